#!/usr/bin/env python3
"""Small parsers for bench/compare; each prints one JSON object.

  parse.py iperf FILE          iperf3 -J output -> {gbps, bytes, seconds, retransmits} or {error}
  parse.py wrk FILE            wrk --latency output -> {rps, p50_ms, p99_ms, requests, errors…}
  parse.py ticks PID...        sum of utime+stime (clock ticks) of the pids -> {ticks} or {error}
  parse.py rss PID...           VmRSS (KiB) of each pid -> {rss_kib: [..]}
  parse.py merge JSON k=v...   add fields (values parsed as JSON when they parse) to an object
"""

import json
import re
import sys


def iperf(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        return {"error": f"no output: {e}"}
    try:
        d = json.loads(text)
    except ValueError:
        # iperf3 -J prints one JSON document; anything else is an error message
        return {"error": "unparsable iperf3 output: " + text.strip()[-300:]}
    if d.get("error"):
        return {"error": "iperf3: " + str(d["error"])}
    end = d.get("end") or {}
    recv = end.get("sum_received") or {}
    sent = end.get("sum_sent") or {}
    if not recv.get("bytes"):
        return {"error": "iperf3 reported no received bytes"}
    return {
        "gbps": round(recv["bits_per_second"] / 1e9, 3),
        "bytes": recv["bytes"],
        "seconds": round(recv.get("seconds", 0), 3),
        "sender_gbps": round(sent.get("bits_per_second", 0) / 1e9, 3),
        "retransmits": sent.get("retransmits"),
        "streams": len((d.get("start") or {}).get("connected") or []),
    }


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def to_ms(s):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", s.strip())
    if not m:
        return None
    return float(m.group(1)) * UNITS[m.group(2)]


def wrk(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        return {"error": f"no output: {e}"}
    out = {}
    m = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    if not m:
        return {"error": "no Requests/sec in wrk output: " + text.strip()[-300:]}
    out["rps"] = round(float(m.group(1)), 1)
    m = re.search(r"(\d+) requests in ([0-9.]+\w+),\s+([0-9.]+\w+) read", text)
    if m:
        out["requests"] = int(m.group(1))
    for pct in ("50", "75", "90", "99"):
        m = re.search(r"^\s+" + pct + r"%\s+(\S+)", text, re.M)
        if m:
            out[f"p{pct}_ms"] = to_ms(m.group(1))
            if out[f"p{pct}_ms"] is not None:
                out[f"p{pct}_ms"] = round(out[f"p{pct}_ms"], 3)
    m = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    if m:
        out["socket_errors"] = {
            "connect": int(m.group(1)),
            "read": int(m.group(2)),
            "write": int(m.group(3)),
            "timeout": int(m.group(4)),
        }
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        out["non_2xx"] = int(m.group(1))
    return out


def ticks(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError as e:
            return {"error": f"pid {p}: {e}"}
        rest = s[s.rindex(")") + 2 :].split()
        # fields 14 and 15 of stat (1-based); rest starts at field 3
        total += int(rest[11]) + int(rest[12])
    return {"ticks": total}


def rss(pids):
    out = []
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                kib = next((int(l.split()[1]) for l in f if l.startswith("VmRSS:")), None)
        except OSError:
            kib = None
        out.append(kib)
    return {"rss_kib": out}


def merge(obj, pairs):
    d = json.loads(obj) if obj.strip() else {}
    for kv in pairs:
        k, _, v = kv.partition("=")
        try:
            d[k] = json.loads(v)
        except ValueError:
            d[k] = v
    return d


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "iperf":
        r = iperf(args[0])
    elif cmd == "wrk":
        r = wrk(args[0])
    elif cmd == "ticks":
        r = ticks(args)
    elif cmd == "rss":
        r = rss(args)
    elif cmd == "merge":
        r = merge(args[0], args[1:])
    else:
        sys.exit(f"unknown command {cmd}")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
