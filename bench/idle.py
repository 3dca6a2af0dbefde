#!/usr/bin/env python3
"""Idle-session memory probe for bench/compare.

  idle.py serve PORT STATUS_FILE
      A backend that accepts connections and holds them open without writing;
      it closes its side when the peer closes. The number of connections it
      currently holds is written to STATUS_FILE (at most every 50 ms).

  idle.py measure --port P --sessions N --status STATUS_FILE [--pids 1,2] [--settle 2]
                 [--timeout 60] [--stall S] [--prime]
      Opens N idle client connections to 127.0.0.1:P, waits until the backend
      holds N (bounded by --timeout, and by --stall seconds without the count
      moving), waits --settle seconds, and reports the RSS (VmRSS) of the given
      pids before and after as one JSON object on stdout. Then closes every
      connection and reports how long the backend took to see them all go.
      --prime sends one byte on each connection right after it connects (for a
      proxy that opens nothing onward until the client sends data); the backend
      reads and discards it, and never writes.
"""

import argparse
import json
import os
import resource
import selectors
import socket
import sys
import threading
import time


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def serve(port, status_file):
    raise_nofile()
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", port))
    lst.listen(4096)
    lst.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lst, selectors.EVENT_READ, None)
    held = 0
    written = -1
    last_write = 0.0

    def write_status(n):
        tmp = status_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(n))
        os.replace(tmp, status_file)

    write_status(0)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select(timeout=0.05):
            if key.data is None:
                for _ in range(256):
                    try:
                        c, _ = lst.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError as e:  # EMFILE and friends: say so, keep going
                        print(f"accept: {e}", file=sys.stderr, flush=True)
                        time.sleep(0.05)
                        break
                    c.setblocking(False)
                    sel.register(c, selectors.EVENT_READ, "c")
                    held += 1
            else:
                c = key.fileobj
                try:
                    data = c.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(c)
                    c.close()
                    held -= 1
        now = time.monotonic()
        if held != written and now - last_write >= 0.05:
            write_status(held)
            written = held
            last_write = now


def read_status(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return -1


def vmrss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def total_rss(pids):
    vals = [vmrss_kib(p) for p in pids]
    if any(v is None for v in vals):
        return None, vals
    return sum(vals), vals


def measure(args):
    limit = raise_nofile()
    pids = [int(p) for p in args.pids.split(",") if p.strip()] if args.pids else []
    out = {"sessions_wanted": args.sessions, "nofile": limit}
    base = read_status(args.status)
    out["backend_held_before"] = base
    before, before_each = total_rss(pids)
    out["rss_before_kib"] = before
    out["rss_before_each_kib"] = before_each
    socks = []
    errors = {}
    t0 = time.monotonic()
    deadline = t0 + args.timeout
    for i in range(args.sessions):
        if time.monotonic() > deadline:
            errors["deadline"] = errors.get("deadline", 0) + 1
            break
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", args.port))
            if args.prime:
                s.sendall(b"x")
            socks.append(s)
        except OSError as e:
            s.close()
            k = type(e).__name__ + ":" + str(getattr(e, "errno", ""))
            errors[k] = errors.get(k, 0) + 1
            if sum(errors.values()) > 50:
                break
    out["opened"] = len(socks)
    out["connect_seconds"] = round(time.monotonic() - t0, 3)
    out["connect_errors"] = errors
    # wait until the backend holds every session (bounded; also by a stall of the count)
    want = max(base, 0) + len(socks)
    seen, moved = read_status(args.status), time.monotonic()
    stalled = False
    while time.monotonic() < deadline and seen < want:
        time.sleep(0.05)
        now_seen = read_status(args.status)
        if now_seen != seen:
            seen, moved = now_seen, time.monotonic()
        elif args.stall and time.monotonic() - moved > args.stall:
            stalled = True
            break
    out["backend_held"] = read_status(args.status) - max(base, 0)
    out["primed"] = bool(args.prime)
    if stalled:
        out["stalled_s"] = args.stall
    out["reach_backend_seconds"] = round(time.monotonic() - t0, 3)
    time.sleep(args.settle)
    # sessions closed by the proxy while idle would show up as readable EOF
    closed_early = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                closed_early += 1
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            closed_early += 1
    out["closed_while_idle"] = closed_early
    after, after_each = total_rss(pids)
    out["rss_after_kib"] = after
    out["rss_after_each_kib"] = after_each
    if pids and before is not None and after is not None and socks:
        out["kib_per_session"] = round((after - before) / len(socks), 3)
    elif not pids:
        out["kib_per_session"] = 0.0
    else:
        out["kib_per_session"] = None
    # close and see the backend let go (bounded)
    t1 = time.monotonic()
    for s in socks:
        s.close()
    end = t1 + args.drain_timeout
    while time.monotonic() < end and read_status(args.status) > max(base, 0):
        time.sleep(0.05)
    out["backend_held_after_close"] = read_status(args.status)
    out["release_seconds"] = round(time.monotonic() - t1, 3)
    print(json.dumps(out), flush=True)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("port", type=int)
    s.add_argument("status")
    m = sub.add_parser("measure")
    m.add_argument("--port", type=int, required=True)
    m.add_argument("--sessions", type=int, default=5000)
    m.add_argument("--status", required=True)
    m.add_argument("--pids", default="")
    m.add_argument("--settle", type=float, default=2.0)
    m.add_argument("--timeout", type=float, default=60.0)
    m.add_argument("--drain-timeout", type=float, default=10.0)
    m.add_argument("--stall", type=float, default=0.0,
                   help="stop waiting for the backend after this many seconds without progress (0: off)")
    m.add_argument("--prime", action="store_true", help="send one byte on each connection")
    a = ap.parse_args()
    if a.cmd == "serve":
        serve(a.port, a.status)
    else:
        measure(a)


if __name__ == "__main__":
    main()
