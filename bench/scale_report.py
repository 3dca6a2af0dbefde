#!/usr/bin/env python3
"""The Markdown report of bench/discovery-scale, from the scale tool's JSON line.

  scale_report.py RESULT.json CPU_MODEL CORES ETCD_RSS_BEFORE_KIB DB_SIZE_BYTES COMMAND
"""

import json
import sys


def fmt(v, unit=""):
    if v is None:
        return "–"
    if isinstance(v, float):
        v = f"{v:,.2f}" if v < 100 else f"{v:,.0f}"
    else:
        v = f"{v:,}"
    return f"{v}{unit}"


def row(name, lat, target=None):
    a, e, w, f = lat["all_ms"], lat["each_ms"], lat["write_ms"], lat["after_write_ms"]
    cells = [name, fmt(lat["changes"]), fmt(a["p50"]), fmt(a["p99"]), fmt(a["max"]),
             fmt(e["p50"]), fmt(e["p99"]), fmt(w["p50"]), fmt(w["p99"]), fmt(f["p50"]), fmt(f["p99"])]
    if target is not None:
        p99 = a["p99"]
        cells.append("–" if p99 is None else ("met" if p99 <= target else "**not met**"))
    else:
        cells.append("")
    return "| " + " | ".join(cells) + " |"


def main():
    path, cpu, cores, rss_before, db_size, command = sys.argv[1:7]
    r = json.loads(open(path).read())
    ch, ramp, ka, etcd = r["churn"], r["ramp"], r["keepalives"], r["etcd"]
    print(f"`{command}` — {cpu} ({cores} cores), {r['nodes']:,} nodes, {r['watchers']} watchers, "
          f"{r['conns']:,} node connections, {r['ttl_s']} s leases, churn {r['churn_pct_min']} %/min "
          f"for {ch['secs']} s (nodes away {r['away_ms']} ms), records of {r['record_bytes']} bytes "
          f"(key included); load average {r['load1']['before']} → {r['load1']['after']}\n")
    print("Time from just before the write to the change being in the watchers' views, ms:\n")
    print("| changes | n | every watcher p50 | p99 | max | each watcher p50 | p99 | write p50 | p99 | after the write p50 | p99 | p99 ≤ 100 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    print(row("churn: join + leave", ch["latency"], 100.0))
    print(row("churn: join", ch["join"], 100.0))
    print(row("churn: leave", ch["leave"], 100.0))
    print(row(f"ramp: {ramp['joins']:,} joins in {ramp['secs']} s", ramp["latency"]))
    print()
    kib = lambda k: None if k is None else k / 1024
    print("| etcd CPU over the churn | etcd RSS before → after (peak) | etcd db size | keepalives/s (expected) | changes/s | tool CPU, RSS |")
    print("|---:|---:|---:|---:|---:|---:|")
    db = None if db_size in ("", "null") else int(db_size) / 1048576
    print(f"| {fmt(etcd['cpu_pct'], ' %')} | {fmt(kib(int(rss_before)), ' MiB')} → "
          f"{fmt(kib(etcd['rss_kib']), ' MiB')} ({fmt(kib(etcd['hwm_kib']), ' MiB')}) | {fmt(db, ' MiB')} | "
          f"{fmt(ka['answered_per_s'])} ({fmt(ka['expected_per_s'])}) | {fmt(ch['changes_per_s'])} | "
          f"{fmt(r['bench_process']['cpu_pct'], ' %')}, {fmt(kib(r['bench_process']['rss_kib']), ' MiB')} |")
    print()
    we = r["watchers_end"]
    print(f"Snapshot of {r['snapshot']['records']:,} records by a node starting into the full "
          f"registry: {fmt(r['snapshot']['ms'])} ms (connect, lease, register, snapshot); copying a "
          f"watcher's view of {r['snapshot']['records']:,} records (what each change costs each node): "
          f"{fmt(r.get('view_copy_us'))} µs, about {fmt(r.get('view_bytes_per_record'))} bytes a record. "
          f"Watchers at the end: {we['up']} of {r['watchers']} up, views {sorted(set(we['in_view']))}, "
          f"resets {we['resets']}, lagged {we['lagged']}, rejected {we['rejected']}, "
          f"strays {we['strays']}. Missed (not in every view 5 s after the churn): {ch['missed']}; "
          f"failed writes: ramp {ramp['failed']}, churn {ch['failed']}; keepalive streams broken: "
          f"{ka['broken']}; cycles stuck: {ch['stuck']}.")
    m = r.get("etcd_metrics") or {}
    if m:
        f, c = m["wal_fsync"], m["backend_commit"]
        print(f"\netcd over the churn (its /metrics): WAL fsync {fmt(int(f['count']))} at mean "
              f"{fmt(f['mean_ms'])} ms (p50 under {fmt(f['p50_under_ms'])}, p99 under "
              f"{fmt(f['p99_under_ms'])} ms); backend commit mean {fmt(c['mean_ms'])} ms; sent to "
              f"clients {fmt(m['sent_bytes_per_s'] / 1024)} KiB/s, received {fmt(m['received_bytes_per_s'] / 1024)} KiB/s; "
              f"{fmt(m['watch_messages_per_s'])} watch messages/s, {fmt(m['keepalives_received_per_s'])} "
              f"keepalives received/s; slow watchers at the end {fmt(int(m['slow_watchers']))}.")
    for f in ramp["failures"] + ch["failures"] + ch["missed_detail"]:
        print(f"- {f}")


if __name__ == "__main__":
    main()
