#!/usr/bin/env python3
"""Turns bench/compare's JSON lines into the Markdown report.

  report.py RESULTS.jsonl META.json  > latest.md
"""

import json
import statistics
import sys

SYSTEMS = ["direct", "haproxy", "busway", "busway_tls", "busway_open", "busway_relay", "cloudbus"]
HEADS = {"direct": "direct", "haproxy": "haproxy ×2", "busway": "busway ×2",
         "busway_tls": "busway ×2, TLS bus", "busway_open": "busway ×2, no secret",
         "busway_relay": "busway ×3, through a relay",
         "cloudbus": "Cloudbus ×2"}
# Systems shown only when the run asked for them (or, for older runs, has rows of them).
OPTIONAL = ("busway_tls", "busway_open", "busway_relay", "cloudbus")

# key, label, test, field, higher_is_better, target on busway/haproxy (op, value) or None, decimals
# The targets are issue 10's: ahead of the haproxy chain on every machine.
METRICS = [
    ("iperf1", "iperf3, 1 stream (Gbit/s)", "iperf1", "gbps", True, (">=", 1.0), 2),
    ("iperf8", "iperf3, 8 streams (Gbit/s)", "iperf8", "gbps", True, (">=", 1.0), 2),
    ("ka_rps", "HTTP keep-alive (req/s)", "wrk_ka", "rps", True, (">=", 1.0), 0),
    ("ka_p99", "HTTP keep-alive p99 (ms)", "wrk_ka", "p99_ms", False, ("<=", 1.0), 2),
    ("close_rps", "HTTP `Connection: close` (req/s)", "wrk_close", "rps", True, (">=", 1.5), 0),
    ("close_p99", "HTTP `Connection: close` p99 (ms)", "wrk_close", "p99_ms", False, None, 2),
    ("idle", "idle memory (KiB/session)", "idle", "kib_per_session", False, ("<=", 1.0), 2),
    # the same on fresh proxies, each session having sent one byte: compares with a chain that
    # opens its onward connections only on the client's first data (Cloudbus)
    ("idle_primed", "idle memory, 1 byte sent per session (KiB/session)", "idle_primed",
     "kib_per_session", False, None, 2),
    ("cpu", "proxy CPU (s/GB, 8 streams)", "iperf8", "cpu_s_per_gb", False, ("<=", 0.9), 3),
    # informational: the proxies' CPU per HTTP request (less sensitive to other load on the box)
    ("ka_cpu", "proxy CPU per keep-alive request (µs)", "wrk_ka", "cpu_us_per_req", False, None, 1),
    ("close_cpu", "proxy CPU per `Connection: close` request (µs)", "wrk_close", "cpu_us_per_req", False, None, 1),
]
NO_PROXY = ("idle", "idle_primed", "cpu", "ka_cpu", "close_cpu")

# TLS=1: the busway chain with [bus.tls] against the same chain without, in the same run.
# key, label, test, field, higher_is_better, target on TLS/plaintext (op, value) or None, decimals.
# The targets are issue 12's; "new sessions over a warm transport" is the `Connection: close`
# test, each request a new client connection and a new session over the established transport.
TLS_METRICS = [
    ("iperf1", "bulk: iperf3, 1 stream (Gbit/s)", "iperf1", "gbps", True, (">=", 0.85), 2),
    ("iperf8", "iperf3, 8 streams (Gbit/s)", "iperf8", "gbps", True, None, 2),
    ("ka_rps", "HTTP keep-alive (req/s)", "wrk_ka", "rps", True, (">=", 0.95), 0),
    ("ka_p99", "HTTP keep-alive p99 (ms)", "wrk_ka", "p99_ms", False, None, 2),
    ("close_rps", "new sessions: HTTP `Connection: close` (req/s)", "wrk_close", "rps", True, (">=", 0.95), 0),
    ("close_p99", "HTTP `Connection: close` p99 (ms)", "wrk_close", "p99_ms", False, None, 2),
    ("cpu", "proxy CPU (s/GB, 8 streams)", "iperf8", "cpu_s_per_gb", False, None, 3),
    ("idle", "idle memory (KiB/session)", "idle", "kib_per_session", False, None, 2),
]
# KEYED=1: the busway chain (its bus secret keys every envelope with AES-256-GCM) against the same
# chain with no secret (unauthenticated, CRC-32 envelopes), in the same run. Same layout as
# TLS_METRICS; the target on keyed/unkeyed bulk is issue 12's.
KEYED_METRICS = [
    ("iperf1", "bulk: iperf3, 1 stream (Gbit/s)", "iperf1", "gbps", True, (">=", 0.95), 2),
    ("iperf8", "iperf3, 8 streams (Gbit/s)", "iperf8", "gbps", True, None, 2),
    ("ka_rps", "HTTP keep-alive (req/s)", "wrk_ka", "rps", True, None, 0),
    ("ka_p99", "HTTP keep-alive p99 (ms)", "wrk_ka", "p99_ms", False, None, 2),
    ("close_rps", "new sessions: HTTP `Connection: close` (req/s)", "wrk_close", "rps", True, None, 0),
    ("close_p99", "HTTP `Connection: close` p99 (ms)", "wrk_close", "p99_ms", False, None, 2),
    ("cpu", "proxy CPU (s/GB, 8 streams)", "iperf8", "cpu_s_per_gb", False, None, 3),
    ("ka_cpu", "proxy CPU per keep-alive request (µs)", "wrk_ka", "cpu_us_per_req", False, None, 1),
    ("idle", "idle memory (KiB/session)", "idle", "kib_per_session", False, None, 2),
]
# RELAY=1: the chain through a relay (ingress > relay > egress) against the direct chain
# (ingress > egress), same run; the targets are issue 13's: a relay hop adds at most 1.3× the
# latency and keeps at least 0.8× the bulk throughput.
RELAY_METRICS = [
    ("iperf1", "bulk: iperf3, 1 stream (Gbit/s)", "iperf1", "gbps", True, (">=", 0.8), 2),
    ("iperf8", "iperf3, 8 streams (Gbit/s)", "iperf8", "gbps", True, None, 2),
    ("ka_p50", "latency: HTTP keep-alive p50 (ms)", "wrk_ka", "p50_ms", False, ("<=", 1.3), 3),
    ("ka_p99", "HTTP keep-alive p99 (ms)", "wrk_ka", "p99_ms", False, None, 2),
    ("ka_rps", "HTTP keep-alive (req/s)", "wrk_ka", "rps", True, None, 0),
    ("close_rps", "new sessions: HTTP `Connection: close` (req/s)", "wrk_close", "rps", True, None, 0),
    ("close_p99", "HTTP `Connection: close` p99 (ms)", "wrk_close", "p99_ms", False, None, 2),
    ("cpu", "proxy CPU (s/GB, 8 streams)", "iperf8", "cpu_s_per_gb", False, None, 3),
]
IDLE_TESTS = ("idle", "idle_primed")


def fmt(v, d):
    if v is None:
        return "—"
    if d == 0:
        return f"{v:,.0f}"
    return f"{v:.{d}f}"


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
    return rows


def unforwarded(r):
    """An idle measurement in which no session reached the backend: the chain held nothing
    onward (Cloudbus dials only on a client's first byte), so its RSS growth is not a figure
    per session through the chain."""
    return (r.get("test") in IDLE_TESTS and not r.get("error") and (r.get("opened") or 0) > 0
            and (r.get("backend_held") or 0) <= 0)


def values(rows, system, test, field):
    out = []
    for r in rows:
        if r.get("system") == system and r.get("test") == test and r.get(field) is not None \
                and not unforwarded(r):
            out.append((r.get("round"), r[field]))
    return out


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def machine(meta):
    """One line naming the machine the figures came from."""
    cpu = meta.get("cpu", "?")
    if meta.get("cpu_id"):
        cpu += f" ({meta['cpu_id']})"
    kernel = meta.get("kernel", "?")
    if meta.get("kernel_version"):
        kernel += f" {meta['kernel_version']}"
    return f"**Machine:** {cpu}; {meta.get('nproc', '?')} CPUs; Linux {kernel}"


def main():
    rows = load(sys.argv[1])
    meta = {}
    if len(sys.argv) > 2:
        with open(sys.argv[2]) as f:
            meta = json.load(f)
    p = print
    p("# busway comparison benchmark")
    p()
    p(machine(meta))
    p()
    p(f"Run `{meta.get('run_id', '?')}`: {meta.get('rounds', '?')} round(s), "
      f"{meta.get('duration', '?')} s per load test, {meta.get('idle_sessions', '?')} idle sessions; "
      f"systems interleaved per round.")
    p()
    for k in ("haproxy", "nginx", "wrk", "iperf3", "busway", "cloudbus"):
        if k in meta:
            p(f"- {k}: {meta[k]}")
    for k, why in (meta.get("skipped") or {}).items():
        p(f"- {k}: **skipped**: {why}")
    p()
    # Cloudbus gets columns when this run asked for it (older runs have no "systems": then
    # when it has rows)
    def asked(system):
        return system in meta.get("systems", []) or any(r.get("system") == system for r in rows)
    with_cb = asked("cloudbus")
    shown = [s for s in SYSTEMS if s not in OPTIONAL or asked(s)]
    p("Cells: median (min–max over rounds). Ratios are of medians. Targets apply to busway/haproxy"
      + ("; \"ahead\" says whether busway beats Cloudbus on that row." if with_cb else "."))
    p()
    head = ["metric"] + [HEADS[s] for s in shown] + ["busway/haproxy", "target", "met"]
    if with_cb:
        head += ["busway/Cloudbus", "ahead"]
    head += ["busway/direct"]
    p("| " + " | ".join(head) + " |")
    p("|" + "---|" * len(head))
    med = {}
    na_notes = {}   # system -> unforwarded idle records, explained under the table
    for key, label, test, field, higher, target, d in METRICS:
        if key == "idle_primed" and not any(r.get("test") == test for r in rows):
            continue   # IDLE_PRIMED=0, or a run from before the test existed
        cells = []
        for s in shown:
            vs = [v for _, v in values(rows, s, test, field)]
            if s == "direct" and key in NO_PROXY:
                med[(key, s)] = None
                cells.append("0 (no proxy)")
                continue
            if not vs:
                med[(key, s)] = None
                unf = [r for r in rows if r.get("system") == s and r.get("test") == test and unforwarded(r)]
                ran = any(r.get("system") == s for r in rows)
                if unf:
                    na_notes.setdefault(s, []).extend(unf)
                    cells.append("n/a †")
                else:
                    cells.append("failed" if ran else "not run")
                continue
            m = statistics.median(vs)
            med[(key, s)] = m
            if len(vs) == 1:
                cells.append(fmt(m, d))
            else:
                cells.append(f"{fmt(m, d)} ({fmt(min(vs), d)}–{fmt(max(vs), d)})")
        b, h, dr = med[(key, "busway")], med[(key, "haproxy")], med[(key, "direct")]
        c = med.get((key, "cloudbus"))
        rh, rd, rc = ratio(b, h), ratio(b, dr), ratio(b, c)
        if target is None:
            tcell, met = "—", "—"
        else:
            op, tv = target
            tcell = f"{'≥' if op == '>=' else '≤'} {tv}×"
            if rh is None:
                # a zero haproxy figure with a zero busway figure still meets a <= target
                if b is not None and h == 0 and op == "<=":
                    met = "yes" if b <= 0 else "no"
                else:
                    met = "n/a"
            else:
                ok = rh >= tv if op == ">=" else rh <= tv
                met = "**yes**" if ok else "**no**"
        line = [label] + cells + [fmt(rh, 2) + "×" if rh is not None else "—", tcell, met]
        if with_cb:
            if b is None or c is None:
                ahead = "—"
            else:
                ahead = "yes" if (b > c if higher else b < c) else "**no**"
            line += [fmt(rc, 2) + "×" if rc is not None else "—", ahead]
        line += [fmt(rd, 2) + "×" if rd is not None else "—"]
        p("| " + " | ".join(line) + " |")
    p()
    for s, recs in na_notes.items():
        recs = sorted(recs, key=lambda r: (str(r.get("test")), r.get("round") or 0))
        growth = [r["kib_per_session"] for r in recs if r.get("kib_per_session") is not None]
        tests = sorted({r.get("test") for r in recs})
        what = (f"† n/a for {HEADS[s]} ({', '.join(tests)}): none of the "
                f"{recs[0].get('opened')} sessions reached the backend "
                f"(it held {', '.join(str(r.get('backend_held')) for r in recs)} when the wait ended)")
        if s == "cloudbus":
            what += (". Cloudbus's controller opens nothing onward until the client sends data: "
                     "an idle session is one accepted socket at the controller, with no connection "
                     "to the segment or the backend, so its memory does not compare with a chain "
                     "that holds the whole path open")
        if growth:
            what += (f"; the proxies' RSS grew by {', '.join(fmt(g, 2) for g in growth)} KiB per "
                     f"accepted session")
        if s == "cloudbus" and "idle_primed" not in tests and any(
                r.get("test") == "idle_primed" and r.get("system") == s for r in rows):
            what += ". The row \"1 byte sent per session\" gives the comparable figure"
        p(what + ".")
        p()

    if asked("busway_tls"):
        tls_table(rows, p)
    if asked("busway_open"):
        keyed_table(rows, p)
    if asked("busway_relay"):
        relay_table(rows, p)

    # per-round values
    p("## Per-round values")
    p()
    rounds = sorted({r.get("round") for r in rows if isinstance(r.get("round"), int)})
    p("| metric | system | " + " | ".join(f"round {i}" for i in rounds) + " |")
    p("|---|---|" + "---|" * len(rounds))
    for key, label, test, field, higher, target, d in METRICS:
        if key == "idle_primed" and not any(r.get("test") == test for r in rows):
            continue
        for s in shown:
            if s == "direct" and key in NO_PROXY:
                continue
            by = dict(values(rows, s, test, field))
            if not by and any(r.get("system") == s and r.get("test") == test and unforwarded(r) for r in rows):
                by = {r.get("round"): None for r in rows if r.get("system") == s and r.get("test") == test}
                p(f"| {label} | {s} | " + " | ".join("n/a †" if i in by else "—" for i in rounds) + " |")
                continue
            p(f"| {label} | {s} | " + " | ".join(fmt(by.get(i), d) for i in rounds) + " |")
    p()

    # diagnostics
    notes = []
    for r in rows:
        s, t, rd = r.get("system"), r.get("test"), r.get("round")
        if r.get("error"):
            notes.append(f"round {rd}, {s}, {t}: **error**: {r['error']}")
        if t in ("wrk_ka", "wrk_close"):
            se = r.get("socket_errors")
            if se and any(se.values()):
                notes.append(f"round {rd}, {s}, {t}: wrk socket errors {se}")
            if r.get("non_2xx"):
                notes.append(f"round {rd}, {s}, {t}: {r['non_2xx']} non-2xx/3xx responses")
        if t in IDLE_TESTS and not r.get("error"):
            want = r.get("sessions_wanted")
            extra = []
            if r.get("opened") != want:
                extra.append(f"opened {r.get('opened')}/{want} (errors {r.get('connect_errors')})")
            if r.get("backend_held") != r.get("opened"):
                extra.append(f"backend held {r.get('backend_held')}/{r.get('opened')}")
            if r.get("closed_while_idle"):
                extra.append(f"{r['closed_while_idle']} closed while idle")
            if r.get("backend_held_after_close", 0) > 0:
                extra.append(f"backend still held {r['backend_held_after_close']} "
                             f"{r.get('release_seconds')} s after the clients closed")
            if r.get("stalled_s"):
                extra.append(f"stopped waiting after {r['stalled_s']} s without progress")
            if extra:
                notes.append(f"round {rd}, {s}, {t}: " + "; ".join(extra))
        if t == "stop" and r.get("forced"):
            notes.append(f"round {rd}, {s}: {r.get('proc')} did not exit within "
                         f"{r.get('waited_s')} s of SIGTERM; killed")
        if t == "stop" and r.get("died_early"):
            notes.append(f"round {rd}, {s}: {r.get('proc')} had already exited before stop "
                         f"(status {r.get('status')})")
    # The proxies share one core; during a load test they should keep it busy. Less than 90 %
    # means something else ran on that core (a compiler, say) or the load generator was the limit.
    dur = meta.get("duration")
    if isinstance(dur, (int, float)) and dur > 0:
        for r in rows:
            if r.get("cpu_s") is not None and r.get("test") in ("iperf1", "iperf8", "wrk_ka", "wrk_close"):
                share = r["cpu_s"] / dur
                if share < 0.9:
                    notes.append(f"round {r.get('round')}, {r.get('system')}, {r.get('test')}: the proxies "
                                 f"used {share:.0%} of their core (below 90 %: other load on that core, "
                                 f"or the limit was elsewhere)")
    p("## Diagnostics")
    p()
    if notes:
        for n in notes:
            p(f"- {n}")
    else:
        p("- none: every tool ran, no wrk socket errors, every idle session reached the backend, "
          "the proxies kept their core busy in every load test.")
    p()
    loads = [r for r in rows if r.get("test") == "load"]
    if loads:
        ends = {(r.get("round"), r.get("system")): r for r in rows if r.get("test") == "load_end"}
        busy = []
        for r in loads:
            e = ends.get((r.get("round"), r.get("system")), {})
            if r.get("rustc") or e.get("rustc"):
                busy.append(f"round {r.get('round')} {r.get('system')}")
        p(f"Background load when each system's turn began: 1-min loadavg "
          f"{min(r.get('loadavg1', 0) for r in loads):.2f}–{max(r.get('loadavg1', 0) for r in loads):.2f}; "
          + (f"**a compiler (rustc) was running at the start or end of {len(busy)} of {len(loads)} "
             f"turns** ({', '.join(busy)}): those figures are disturbed."
             if busy else "no rustc process was running at the start or end of any turn."))
        p()
    starts = {(r.get("round"), r.get("system")): r.get("rss_kib") for r in rows if r.get("test") == "rss_start"}
    ends = [r for r in rows if r.get("test") == "rss_end"]
    if ends:
        p("Proxy RSS in KiB (each process, after start-up and warm-up → after all tests of the round):")
        p()
        for r in ends:
            p(f"- round {r.get('round')}, {r.get('system')}: "
              f"{starts.get((r.get('round'), r.get('system')))} → {r.get('rss_kib')}")
        p()
    idle = [r for r in rows if r.get("test") in IDLE_TESTS and r.get("rss_before_each_kib")]
    if idle:
        p("Idle test detail (RSS in KiB of each proxy process, before → after):")
        p()
        for r in idle:
            reach = (f"all at backend after {r.get('reach_backend_seconds')} s"
                     if r.get("backend_held") == r.get("opened") else
                     f"{r.get('backend_held')} at backend after {r.get('reach_backend_seconds')} s")
            p(f"- round {r.get('round')}, {r.get('system')}, {r.get('test')}: "
              f"{r.get('rss_before_each_kib')} → {r.get('rss_after_each_kib')}, "
              f"{r.get('opened')} sessions, connect {r.get('connect_seconds')} s, "
              f"{reach}, released in {r.get('release_seconds')} s")
        p()


def tls_table(rows, p):
    """TLS bus ÷ plaintext bus (TLS=1), with issue 12's targets."""
    p("## TLS bus ÷ plaintext bus")
    p()
    p("The busway chain with `[bus.tls]` (mutual TLS 1.3, AES-128-GCM, EC P-256 certificates) "
      "against the same chain without, same binary, same run. Cells: median (min–max over rounds); "
      "the ratio is of medians, TLS ÷ plaintext (for a lower-is-better row, above 1× means TLS "
      "costs more). Per round: the ratio of that round's two figures.")
    p()
    ratio_table(rows, p, "busway", "busway_tls", "TLS ÷ plaintext", TLS_METRICS)


def keyed_table(rows, p):
    """keyed ÷ unkeyed (KEYED=1): the bus secret's AES-256-GCM envelopes against CRC-32 ones."""
    p("## keyed ÷ unkeyed")
    p()
    p("The busway chain with its bus secret (every envelope carries a keyed AES-256-GCM check) "
      "against the same chain with no `secret` on either node (unauthenticated, CRC-32 envelopes), "
      "same binary, same run. Cells: median (min–max over rounds); the ratio is of medians, "
      "keyed ÷ unkeyed (for a lower-is-better row, above 1× means the keyed check costs more). "
      "Per round: the ratio of that round's two figures.")
    p()
    ratio_table(rows, p, "busway_open", "busway", "keyed ÷ unkeyed", KEYED_METRICS)


def relay_table(rows, p):
    """relay chain ÷ direct chain (RELAY=1), with issue 13's targets."""
    p("## relay ÷ direct")
    p()
    p("The busway chain through a relay (ingress > relay > egress; the relay a third node with "
      "`[relay] enabled`, on the proxies' core like the other two) against the direct chain "
      "(ingress > egress), same binary, same run. Cells: median (min–max over rounds); the ratio "
      "is of medians, relay ÷ direct (for a lower-is-better row, above 1× means the relay costs "
      "more). Per round: the ratio of that round's two figures.")
    p()
    ratio_table(rows, p, "busway", "busway_relay", "relay ÷ direct", RELAY_METRICS)


def ratio_table(rows, p, base, subject, name, metrics):
    """One row per metric: base's and subject's figures, subject ÷ base against the row's target,
    and the same ratio per round."""
    rounds = sorted({r.get("round") for r in rows if isinstance(r.get("round"), int)})
    head = ["metric", HEADS[base], HEADS[subject], name, "target", "met"]
    head += [f"round {i}" for i in rounds]
    p("| " + " | ".join(head) + " |")
    p("|" + "---|" * len(head))
    for key, label, test, field, higher, target, d in metrics:
        bv = dict(values(rows, base, test, field))
        sv = dict(values(rows, subject, test, field))
        cells = []
        for by in (bv, sv):
            vs = list(by.values())
            if not vs:
                cells.append("—")
            elif len(vs) == 1:
                cells.append(fmt(vs[0], d))
            else:
                cells.append(f"{fmt(statistics.median(vs), d)} ({fmt(min(vs), d)}–{fmt(max(vs), d)})")
        mb = statistics.median(bv.values()) if bv else None
        ms = statistics.median(sv.values()) if sv else None
        r = ratio(ms, mb)
        if target is None:
            tcell, met = "—", "—"
        else:
            op, tv = target
            tcell = f"{'≥' if op == '>=' else '≤'} {tv}×"
            met = "n/a" if r is None else ("**yes**" if (r >= tv if op == ">=" else r <= tv) else "**no**")
        per = [fmt(ratio(sv.get(i), bv.get(i)), 2) + "×" if ratio(sv.get(i), bv.get(i)) is not None
               else "—" for i in rounds]
        p("| " + " | ".join([label] + cells + [fmt(r, 3) + "×" if r is not None else "—", tcell, met] + per) + " |")
    p()


if __name__ == "__main__":
    main()
