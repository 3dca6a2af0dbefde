#!/usr/bin/env python3
"""Readiness probes for bench/compare (bounded; exit 0 on success).

  probe.py tcp PORT [SECONDS]         a TCP connect to 127.0.0.1:PORT succeeds
  probe.py http PORT PATH [SECONDS]   GET PATH answers 200 with a body
"""

import socket
import sys
import time


def tcp_ok(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def http_ok(port, path):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.settimeout(2)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            return data.startswith(b"HTTP/1.1 200") and b"\r\n\r\n" in data
    except OSError:
        return False


def main():
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "tcp":
        limit = float(sys.argv[3]) if len(sys.argv) > 3 else 10
        check = lambda: tcp_ok(port)
    else:
        path = sys.argv[3]
        limit = float(sys.argv[4]) if len(sys.argv) > 4 else 10
        check = lambda: http_ok(port, path)
    end = time.monotonic() + limit
    while True:
        if check():
            return 0
        if time.monotonic() > end:
            return 1
        time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
