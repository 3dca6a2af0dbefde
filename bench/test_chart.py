"""Tests of bench/chart.py on tiny synthetic result sets: the SVG parses, has one bar per metric
and compared system with the right number on it, and lower-is-better metrics are inverted so that
> 1× always favours busway. Standard library only; run with

  python3 -m unittest bench/test_chart.py
"""

import os
import sys
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chart  # noqa: E402

NS = "{http://www.w3.org/2000/svg}"


def rows_for(system, by_round):
    """bench/compare-style JSON lines: {round: {test: {field: value}}} for one system."""
    return [dict(fields, round=rnd, system=system, test=test)
            for rnd, tests in by_round.items() for test, fields in tests.items()]


def compare_rows():
    """Three rounds of iperf1 and wrk_ka for busway, haproxy, Cloudbus and direct, and an idle
    test in which Cloudbus's sessions never reached the backend (report.py's "n/a")."""
    rows = []
    for system, gbps, rps, p99, cpu in (
            ("busway", [11.0, 12.0, 13.0], [40000, 44000, 48000], [4.0, 4.0, 5.0], [20, 20, 20]),
            ("haproxy", [10.0, 10.0, 10.0], [40000, 40000, 40000], [8.0, 8.0, 8.0], [25, 25, 25]),
            ("cloudbus", [6.0, 6.0, 6.0], [44000, 44000, 44000], [2.0, 2.0, 2.0], [40, 40, 40]),
            ("direct", [30.0, 30.0, 30.0], [60000, 60000, 60000], [2.0, 2.0, 2.0], [None] * 3)):
        rows += rows_for(system, {
            i + 1: {"iperf1": {"gbps": gbps[i]},
                    "wrk_ka": {"rps": rps[i], "p99_ms": p99[i],
                               **({"cpu_us_per_req": cpu[i]} if cpu[i] is not None else {})}}
            for i in range(3)})
    for system, held, kib in (("busway", 100, 6.0), ("haproxy", 100, 6.5), ("cloudbus", 0, 9.0)):
        rows += rows_for(system, {1: {"idle": {"opened": 100, "backend_held": held, "kib_per_session": kib}}})
    return rows


def bars(svg):
    """{(metric, series key): (value text or None, missing text or None)} from a chart."""
    root = ET.fromstring(svg)
    out = {}
    for g in root.iter(NS + "g"):
        if g.get("class") != "bar":
            continue
        texts = {t.get("class"): t.text for t in g.iter(NS + "text")}
        key = (g.get("data-metric"), g.get("data-series"))
        assert key not in out, f"two bars for {key}"
        out[key] = (texts.get("value"), texts.get("missing"))
    return out


class CompareChart(unittest.TestCase):
    def setUp(self):
        self.svg = chart.compare_svg(compare_rows(), {"run_id": "test", "rounds": 3,
                                                      "systems": ["direct", "haproxy", "busway", "cloudbus"]})
        self.bars = bars(self.svg)

    def test_parses_with_a_title(self):
        root = ET.fromstring(self.svg)
        self.assertEqual(root.tag, NS + "svg")
        self.assertIn("busway", root.find(NS + "title").text)

    def test_one_bar_per_metric_and_system(self):
        # metrics whose test ran; direct is left out where it has no proxy (CPU, memory)
        want = {(m, s) for m in ("iperf1", "ka_rps", "ka_p99") for s in ("haproxy", "cloudbus", "direct")}
        want |= {("ka_cpu", s) for s in ("haproxy", "cloudbus")}
        want |= {("idle", s) for s in ("haproxy", "cloudbus")}
        self.assertEqual(set(self.bars), want)

    def test_higher_is_better_is_busway_over_system(self):
        self.assertEqual(self.bars[("iperf1", "haproxy")][0], "1.20×")     # 12 / 10
        self.assertEqual(self.bars[("iperf1", "cloudbus")][0], "2.00×")    # 12 / 6
        self.assertEqual(self.bars[("ka_rps", "cloudbus")][0], "1.00×")    # 44,000 / 44,000
        self.assertEqual(self.bars[("iperf1", "direct")][0], "0.40×")      # 12 / 30

    def test_lower_is_better_is_inverted(self):
        # busway's p99 is half haproxy's (4 against 8 ms): busway ÷ haproxy is 0.5, shown as 2×
        self.assertEqual(self.bars[("ka_p99", "haproxy")][0], "2.00×")
        # and twice Cloudbus's (4 against 2 ms): shown as 0.5×, left of the 1× line
        self.assertEqual(self.bars[("ka_p99", "cloudbus")][0], "0.50×")
        self.assertEqual(self.bars[("ka_cpu", "haproxy")][0], "1.25×")     # 25 / 20 µs
        self.assertEqual(self.bars[("idle", "haproxy")][0], "1.08×")       # 6.5 / 6.0 KiB

    def test_target_is_restated_in_advantage_terms(self):
        groups = {g.key: g for g in chart.compare_groups(compare_rows(), {})}
        # report.py's keep-alive p99 target is busway/haproxy <= 1.0: advantage >= 1.0, met at 2×
        t = groups["ka_p99"].target
        self.assertEqual((t.value, t.op), (1.0, ">="))
        self.assertTrue(t.text.endswith(": met"))
        # CPU per GB <= 0.9x becomes >= 1/0.9
        self.assertAlmostEqual(chart.target_in_advantage("<=", 0.9, False)[0], 1 / 0.9)
        self.assertIsNone(groups["ka_cpu"].target)

    def test_unforwarded_idle_is_not_a_bar(self):
        value, missing = self.bars[("idle", "cloudbus")]
        self.assertIsNone(value)
        self.assertIn("n/a", missing)

    def test_whisker_spans_the_per_round_ratios(self):
        lo, hi = chart.round_spread({1: 11.0, 2: 12.0, 3: 13.0}, {1: 10.0, 2: 10.0, 3: 10.0}, True)
        self.assertAlmostEqual(lo, 1.1)
        self.assertAlmostEqual(hi, 1.3)
        lo, hi = chart.round_spread({1: 4.0, 2: 5.0}, {1: 8.0, 2: 8.0}, False)
        self.assertAlmostEqual((lo, hi), (1.6, 2.0))
        self.assertIsNone(chart.round_spread({1: 1.0}, {1: 2.0}, True))


def report_text(rows, meta):
    """report.py's Markdown for rows and meta, as one string."""
    import io
    import json
    import tempfile
    import contextlib
    import report
    with tempfile.TemporaryDirectory() as d:
        jl, mj = os.path.join(d, "r.jsonl"), os.path.join(d, "m.json")
        with open(jl, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        with open(mj, "w") as f:
            json.dump(meta, f)
        out = io.StringIO()
        argv = sys.argv
        sys.argv = ["report.py", jl, mj]
        try:
            with contextlib.redirect_stdout(out):
                report.main()
        finally:
            sys.argv = argv
    return out.getvalue()


def table(text, title):
    """{metric label: [cells]} of the Markdown table under `## title`."""
    lines = text.split("## " + title + "\n", 1)[1].splitlines()
    out = {}
    for line in lines:
        if line.startswith("## "):
            break
        if line.startswith("| ") and not line.startswith("| metric"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            out[cells[0]] = cells[1:]
    return out


class VariantTables(unittest.TestCase):
    """report.py's tables of one busway chain against another in the same run: TLS=1's
    "TLS bus ÷ plaintext bus" and KEYED=1's "keyed ÷ unkeyed" (busway_open, no secret)."""

    def rows(self):
        rows = compare_rows()
        for system, gbps, rps, p99 in (("busway_tls", [9.6, 10.8, 10.4], [41800, 41800, 45600], [4.0] * 3),
                                       ("busway_open", [12.0, 12.5, 13.0], [44000, 44000, 48000], [2.0] * 3)):
            rows += rows_for(system, {
                i + 1: {"iperf1": {"gbps": gbps[i]}, "wrk_ka": {"rps": rps[i], "p99_ms": p99[i]}}
                for i in range(3)})
        return rows

    def test_keyed_over_unkeyed(self):
        meta = {"systems": ["direct", "haproxy", "busway_open", "busway", "busway_tls"], "rounds": 3}
        text = report_text(self.rows(), meta)
        t = table(text, "keyed ÷ unkeyed")
        # columns: unkeyed, keyed, ratio, target, met, round 1..3
        bulk = t["bulk: iperf3, 1 stream (Gbit/s)"]
        self.assertEqual(bulk[:5], ["12.50 (12.00–13.00)", "12.00 (11.00–13.00)", "0.960×", "≥ 0.95×", "**yes**"])
        self.assertEqual(bulk[5:], ["0.92×", "0.96×", "1.00×"])
        self.assertEqual(t["HTTP keep-alive (req/s)"][2], "1.000×")          # 44,000 / 44,000
        self.assertEqual(t["HTTP keep-alive p99 (ms)"][2:4], ["2.000×", "—"])  # 4 / 2 ms, no target
        # the unkeyed chain has its own column in the main table, and the TLS table is still there
        self.assertIn("busway ×2, no secret", text.split("\n## ", 1)[0])
        self.assertEqual(table(text, "TLS bus ÷ plaintext bus")["bulk: iperf3, 1 stream (Gbit/s)"][2:5],
                         ["0.867×", "≥ 0.85×", "**yes**"])                   # 10.4 / 12.0

    def test_missed_target_and_absent_system(self):
        rows = [r for r in self.rows() if not (r["system"] == "busway_open" and r["test"] == "iperf1")]
        rows += rows_for("busway_open", {i: {"iperf1": {"gbps": 20.0}} for i in (1, 2, 3)})
        t = table(report_text(rows, {"systems": ["busway_open", "busway"]}), "keyed ÷ unkeyed")
        self.assertEqual(t["bulk: iperf3, 1 stream (Gbit/s)"][2:5], ["0.600×", "≥ 0.95×", "**no**"])
        # without KEYED=1 (no busway_open asked for or run) there is no such table
        plain = [r for r in self.rows() if r["system"] != "busway_open"]
        text = report_text(plain, {"systems": ["haproxy", "busway", "busway_tls"]})
        self.assertNotIn("keyed ÷ unkeyed", text)
        self.assertNotIn("no secret", text)

    def test_relay_over_direct(self):
        rows = compare_rows()
        rows += rows_for("busway", {i: {"wrk_ka": {"p50_ms": 1.0}} for i in (1, 2, 3)})
        rows += rows_for("busway_relay", {
            i + 1: {"iperf1": {"gbps": g}, "wrk_ka": {"rps": 30000, "p50_ms": p50, "p99_ms": 6.0}}
            for i, (g, p50) in enumerate(((8.0, 1.2), (9.0, 1.4), (11.0, 1.25)))})
        text = report_text(rows, {"systems": ["busway", "busway_relay"], "rounds": 3})
        t = table(text, "relay ÷ direct")
        # bulk 9.0 / 12.0 misses 0.8×; p50 1.25 / 1.0 meets ≤ 1.3×
        self.assertEqual(t["bulk: iperf3, 1 stream (Gbit/s)"][2:5], ["0.750×", "≥ 0.8×", "**no**"])
        self.assertEqual(t["latency: HTTP keep-alive p50 (ms)"][2:5], ["1.250×", "≤ 1.3×", "**yes**"])
        self.assertIn("busway ×3, through a relay", text.split("\n## ", 1)[0])
        self.assertNotIn("relay ÷ direct", report_text(compare_rows(), {"systems": ["busway"]}))

    def test_chart_leaves_the_variants_out(self):
        # the compare chart is busway against other systems; its own variants are not rivals
        got = bars(chart.compare_svg(self.rows(), {"systems": ["haproxy", "busway", "busway_open", "busway_tls"]}))
        self.assertFalse({s for _, s in got} & {"busway_open", "busway_tls"})


class OtherCharts(unittest.TestCase):
    def test_fanout(self):
        data = {"rounds": 2, "sessions": 10, "bulk_mib": 1, "rows": {
            "one p50": [100, 100], "half p50": [150, 150], "one p99": [200, 200], "half p99": [500, 500],
            "one Gbit/s": [5.0, 5.0], "half Gbit/s": [4.0, 5.0]}}
        got = bars(chart.fanout_svg(data))
        self.assertEqual(got[("p50", "half")][0], "0.67×")       # 100 / 150: fan-out is slower
        self.assertEqual(got[("p99", "half")][0], "0.40×")       # 200 / 500, below the 0.5× target
        self.assertEqual(got[("Gbit/s", "half")][0], "0.90×")    # median 4.5 / 5

    def test_grpc(self):
        recs = []
        for mode, rate, mps, p99 in (("direct", 0, 1000, 100), ("gateway", 0, 500, 400),
                                     ("direct", 250, 250, 100), ("gateway", 250, 250, 200)):
            recs += [{"mode": mode, "size": 64, "rate": rate, "msgs_per_s": mps, "p99_us": p99}] * 2
        recs.append({"idle_clients": 10, "kib_per_downstream": 5.0})
        got = bars(chart.grpc_svg(recs, rounds=2, duration=1, clients=4))
        self.assertEqual(sorted(v for v, _ in got.values()), ["0.25×", "0.50×", "0.50×"])


if __name__ == "__main__":
    unittest.main()
