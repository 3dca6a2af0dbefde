#!/usr/bin/env python3
"""SVG charts of the benchmark figures: one bar per metric and compared system.

  chart.py compare RESULTS.jsonl META.json OUT.svg   bench/compare's raw lines (as report.py)
  chart.py fanout RESULTS.json OUT.svg               bench/fanout's fanout-latest.json
  chart.py grpc RESULTS.jsonl OUT.svg                bench/grpc's grpc-latest.jsonl

Every bar is an "advantage": how many times better the subject (busway, or half-duplex for
fanout, or the gateway for grpc) does than the system it is compared with, oriented so that
> 1× always means the subject is better. For a higher-is-better metric that is
subject ÷ other; for a lower-is-better one (latency, memory, CPU) it is other ÷ subject. A
reader then never has to remember which way a row points: right of the 1× line is better,
left is worse, and the scale is logarithmic so that 2× better and 2× worse are the same length.

The bar is the ratio of the medians over rounds, the figure the Markdown tables give (inverted
for lower-is-better rows). The whisker spans the lowest to the highest per-round ratio: the
scripts interleave the systems within a round, so round i of one is paired with round i of the
other. A target, when the metric has one, is drawn as a dashed line on that system's bar and
restated in words beside the metric.

Hand-written SVG, Python standard library only, so the scripts need nothing installed: the
charts have a white background, a <title> and <desc>, a <title> per bar and the numbers as
text, which renders the same in a browser and in GitHub's Markdown image view.
"""

import json
import math
import os
import statistics
import sys
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

# Paul Tol's "bright" scheme: distinguishable with the common colour-vision deficiencies. With
# several series their names are also written beside every bar, so colour is never the only cue.
PALETTE = ["#4477AA", "#EE6677", "#AAAAAA", "#228833", "#CCBB44", "#66CCEE", "#AA3377"]
FONT = "Helvetica, Arial, 'DejaVu Sans', 'Liberation Sans', sans-serif"


@dataclass
class Bar:
    """One compared system within a metric. `value` is None when there is nothing to compare
    (a failed or unforwarded measurement); `missing` then says why, in the bar's place."""
    series: str
    value: float = None
    low: float = None
    high: float = None
    detail: str = ""
    missing: str = ""
    key: str = ""


@dataclass
class Target:
    """A target in advantage space (op is ">=" or "<=" on the advantage), drawn on the bar of
    `series`; `text` restates it beside the metric, e.g. "target busway/haproxy ≥ 1.0×: met"."""
    value: float
    op: str
    series: str
    text: str


@dataclass
class Group:
    """One metric: its label, a note on its direction and the bars, one per compared system."""
    key: str
    label: str
    note: str
    bars: list = field(default_factory=list)
    target: Target = None


def advantage(subject, other, higher):
    """subject ÷ other when higher is better, other ÷ subject when lower is: > 1 favours the
    subject either way. None when a figure is missing, zero or negative (an RSS that shrank):
    such a ratio has no place on a log axis and no meaning as "times better"."""
    if subject is None or other is None or subject <= 0 or other <= 0:
        return None
    return subject / other if higher else other / subject


def round_spread(subject, other, higher):
    """(lowest, highest) advantage over the rounds both have, from {round: value} maps; None
    with fewer than two paired rounds, where a whisker would say nothing."""
    ratios = [advantage(subject[r], other[r], higher) for r in subject if r in other]
    ratios = [x for x in ratios if x is not None]
    if len(ratios) < 2:
        return None
    return min(ratios), max(ratios)


def target_in_advantage(op, value, higher):
    """A target on the raw ratio subject ÷ other, restated on the advantage axis: for a
    lower-is-better metric, "ratio ≤ 0.9" becomes "advantage ≥ 1/0.9"."""
    if higher:
        return value, op
    return 1.0 / value, (">=" if op == "<=" else "<=")


def met(op, limit, x):
    return x >= limit if op == ">=" else x <= limit


def times(x):
    """A ratio as text: two decimals, three for ratios below 0.1 so that they do not read 0.00."""
    return f"{x:.3f}×" if x < 0.1 else f"{x:.2f}×"


def sym(op):
    return "≥" if op == ">=" else "≤"


def fmt_num(v):
    """A measured figure for a tooltip: three significant digits are plenty beside a ratio."""
    if v is None:
        return "—"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"


def bar_between(series, subject_name, other_name, subj, other, higher, key=""):
    """The bar for one metric from two {round: value} maps: the advantage of the medians, the
    per-round spread, and a tooltip with the medians themselves."""
    sm, om = statistics.median(subj.values()), statistics.median(other.values())
    adv = advantage(sm, om, higher)
    if adv is None:
        return Bar(series, missing=f"n/a: medians {fmt_num(sm)} and {fmt_num(om)}", key=key)
    spread = round_spread(subj, other, higher)
    detail = (f"{subject_name} {fmt_num(sm)}, {other_name} {fmt_num(om)} (medians of "
              f"{len(subj)} and {len(other)} rounds); {subject_name} advantage {times(adv)}")
    if spread:
        detail += f", per round {times(spread[0])}–{times(spread[1])}"
    return Bar(series, adv, *(spread or (None, None)), detail=detail, key=key)


# ---------------------------------------------------------------- drawing


def wrap(text, width):
    """Greedy word wrap to `width` characters (the label column is narrow; SVG has no wrap)."""
    lines, cur = [], ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    if cur:
        lines.append(cur)
    return lines or [""]


def ticks_for(lo, hi):
    """Tick values for a log axis spanning [lo, hi]: 1-2-5 steps, with 1.5, 3 and 7 in between
    while the span is narrow enough (up to 12×) for their labels not to touch."""
    fine = [1, 1.5, 2, 3, 5, 7]
    coarse = [1, 2, 5]
    steps = fine if hi / lo <= 12 else coarse
    out = []
    for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        for m in steps:
            v = m * 10 ** e
            if lo <= v * 1.0001 and v <= hi * 1.0001:
                out.append(v)
    return out


def tick_text(v):
    return f"{v:g}×"


def render(title, subtitle, explain, groups, series, left="worse", right="better"):
    """The chart as an SVG document. `series` is the ordered list of system names (one colour
    each, from PALETTE); `left` and `right` name the two sides of the 1× line."""
    colour = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(series)}
    width = 1040
    bar_h, bar_gap, group_gap = 16, 6, 18
    # columns: metric label and notes | series name beside each bar (only with several series;
    # the legend says it for one) | the plot. Widths estimated from average glyph widths.
    label_x, plot_l, plot_r = 16, 400, width - 24
    series_x = plot_l - 10             # series names end here (right-aligned)
    named = len(series) > 1
    series_w = max(len(s) for s in series) * 6.3 if named else 0
    label_end = series_x - series_w - 14
    label_chars = int((label_end - label_x) / 7.3)
    note_chars = int((label_end - label_x) / 5.9)

    # the axis domain: every value, whisker end and target, and 1×, with room for the labels
    xs = [1.0]
    for g in groups:
        for b in g.bars:
            xs += [v for v in (b.value, b.low, b.high) if v is not None]
        if g.target:
            xs.append(g.target.value)
    lo, hi = min(xs), max(xs)
    lo, hi = min(lo, 1 / 1.6), max(hi, 1.6)
    lo, hi = lo / 1.05, hi * 1.05
    pad = 64                            # pixels kept free at each end for the value labels
    llo, lhi = math.log(lo), math.log(hi)

    def x(v):
        return plot_l + pad + (math.log(v) - llo) / (lhi - llo) * (plot_r - plot_l - 2 * pad)

    # header
    y = 30
    head = [f'<text x="{label_x}" y="{y}" class="title">{escape(title)}</text>']
    for line in subtitle:
        y += 18
        head.append(f'<text x="{label_x}" y="{y}" class="sub">{escape(line)}</text>')
    y += 6
    for line in explain:
        y += 17
        head.append(f'<text x="{label_x}" y="{y}" class="explain">{escape(line)}</text>')
    # legend
    y += 24
    lx = label_x
    for s in series:
        head.append(f'<rect x="{lx}" y="{y - 11}" width="14" height="14" fill="{colour[s]}"/>'
                    f'<text x="{lx + 20}" y="{y}" class="legend">{escape(s)}</text>')
        lx += 20 + int(len(s) * 7.2) + 28
    if any(g.target for g in groups):
        head.append(f'<line x1="{lx}" y1="{y - 12}" x2="{lx}" y2="{y + 4}" class="target"/>'
                    f'<text x="{lx + 8}" y="{y}" class="legend">target</text>')
        lx += 80
    if any(b.low is not None for g in groups for b in g.bars):
        head.append(f'<line x1="{lx}" y1="{y - 4}" x2="{lx + 24}" y2="{y - 4}" class="whisker"/>'
                    f'<line x1="{lx}" y1="{y - 9}" x2="{lx}" y2="{y + 1}" class="whisker"/>'
                    f'<line x1="{lx + 24}" y1="{y - 9}" x2="{lx + 24}" y2="{y + 1}" class="whisker"/>'
                    f'<text x="{lx + 32}" y="{y}" class="legend">lowest–highest round</text>')
    # above the plot: which side is which, then the tick labels (repeated under the plot)
    y += 32
    one = x(1.0)
    head.append(f'<text x="{one - 8}" y="{y}" class="side" text-anchor="end">◀ {escape(left)}</text>'
                f'<text x="{one + 8}" y="{y}" class="side">{escape(right)} ▶</text>')
    y += 18
    top_ticks_y = y
    y += 6
    axis_y = y
    y += 10

    body = []
    for g in groups:
        lines = wrap(g.label, label_chars)
        # each "; "-separated part of the note (direction, target) starts a line of its own
        note = [line for part in g.note.split("; ") for line in wrap(part, note_chars)]
        rows_h = max(len(g.bars), 1) * (bar_h + bar_gap) - bar_gap
        text_h = 16 * len(lines) + 14 * len(note)
        gh = max(rows_h, text_h)
        top = y
        body.append(f'<g class="metric" data-metric={quoteattr(g.key)}>')
        ty = top + 12
        for line in lines:
            body.append(f'<text x="{label_x}" y="{ty}" class="label">{escape(line)}</text>')
            ty += 16
        for line in note:
            body.append(f'<text x="{label_x}" y="{ty - 2}" class="note">{escape(line)}</text>')
            ty += 14
        by = top
        for b in g.bars:
            cy = by + bar_h / 2
            body.append(f'<g class="bar" data-metric={quoteattr(g.key)} data-series={quoteattr(b.key or b.series)}>')
            body.append(f'<title>{escape(g.label)}, {escape(b.series)}: '
                        f'{escape(b.detail or b.missing)}</title>')
            if named:
                body.append(f'<text x="{series_x}" y="{cy + 4}" class="series" text-anchor="end">{escape(b.series)}</text>')
            if b.value is None:
                body.append(f'<text x="{one + 6}" y="{cy + 4}" class="missing">{escape(b.missing)}</text>')
            else:
                x0, x1 = sorted((one, x(b.value)))
                body.append(f'<rect x="{x0:.1f}" y="{by}" width="{max(x1 - x0, 1):.1f}" height="{bar_h}" '
                            f'fill="{colour.get(b.series, PALETTE[0])}"/>')
                ends = [x(b.value)]
                if b.low is not None:
                    wl, wh = x(b.low), x(b.high)
                    ends += [wl, wh]
                    body.append(f'<line x1="{wl:.1f}" y1="{cy}" x2="{wh:.1f}" y2="{cy}" class="whisker"/>'
                                f'<line x1="{wl:.1f}" y1="{cy - 5}" x2="{wl:.1f}" y2="{cy + 5}" class="whisker"/>'
                                f'<line x1="{wh:.1f}" y1="{cy - 5}" x2="{wh:.1f}" y2="{cy + 5}" class="whisker"/>')
                # the number goes beyond the bar's outer end (and its whisker), and beyond a
                # target line just outside that end, which it would otherwise overprint
                if g.target and g.target.series == b.series:
                    tx = x(g.target.value)
                    edge = max(ends) if b.value >= 1 else min(ends)
                    if (tx - edge if b.value >= 1 else edge - tx) > -2 and abs(tx - edge) < 48:
                        ends.append(tx)
                if b.value >= 1:
                    body.append(f'<text x="{max(ends) + 6:.1f}" y="{cy + 4}" class="value">{times(b.value)}</text>')
                else:
                    body.append(f'<text x="{min(ends) - 6:.1f}" y="{cy + 4}" class="value" '
                                f'text-anchor="end">{times(b.value)}</text>')
            if g.target and g.target.series == b.series:
                tx = x(g.target.value)
                body.append(f'<line x1="{tx:.1f}" y1="{by - 3}" x2="{tx:.1f}" y2="{by + bar_h + 3}" class="target"/>')
            body.append('</g>')
            by += bar_h + bar_gap
        body.append('</g>')
        y = top + gh + group_gap
        body.append(f'<line x1="{label_x}" y1="{y - group_gap / 2:.1f}" x2="{plot_r}" '
                    f'y2="{y - group_gap / 2:.1f}" class="sep"/>')
    bottom = y - group_gap / 2
    # grid and tick labels, drawn under the bars
    grid = []
    for t in ticks_for(lo, hi):
        tx = x(t)
        cls = "one" if abs(t - 1) < 1e-9 else "grid"
        grid.append(f'<line x1="{tx:.1f}" y1="{axis_y}" x2="{tx:.1f}" y2="{bottom:.1f}" class="{cls}"/>'
                    f'<text x="{tx:.1f}" y="{bottom + 16:.1f}" class="tick" text-anchor="middle">{tick_text(t)}</text>'
                    f'<text x="{tx:.1f}" y="{top_ticks_y}" class="tick" text-anchor="middle">{tick_text(t)}</text>')
    height = int(bottom + 34)
    desc = " ".join(subtitle + explain)
    css = (f"text{{font-family:{FONT};fill:#222}}"
           ".title{font-size:18px;font-weight:bold}.sub{font-size:12px;fill:#444}"
           ".explain{font-size:12.5px;fill:#333}.legend{font-size:12.5px}"
           ".side{font-size:12px;fill:#555;font-style:italic}"
           ".label{font-size:13px;font-weight:bold}.note{font-size:11px;fill:#555}"
           ".series{font-size:11.5px;fill:#333}.value{font-size:12px;font-weight:bold}"
           ".missing{font-size:11.5px;fill:#666;font-style:italic}.tick{font-size:11px;fill:#555}"
           ".grid{stroke:#e2e2e2;stroke-width:1}.one{stroke:#333;stroke-width:1.5}"
           ".sep{stroke:#eeeeee;stroke-width:1}.whisker{stroke:#222;stroke-width:1.5}"
           ".target{stroke:#000;stroke-width:2;stroke-dasharray:4 2}")
    return "\n".join(
        [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
         f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="t d">',
         f'<title id="t">{escape(title)}</title>',
         f'<desc id="d">{escape(desc)}</desc>',
         f'<style>{css}</style>',
         f'<rect width="{width}" height="{height}" fill="#ffffff"/>']
        + head + grid + body + ["</svg>", ""])


# ---------------------------------------------------------------- bench/compare

# display names of the systems busway is compared with, in drawing order
COMPARE_OTHERS = [("haproxy", "haproxy ×2"), ("cloudbus", "Cloudbus ×2"), ("direct", "direct (no proxy)")]


def missing_reason(rows, system, test):
    """Why a system has no figure for a test, in the words of report.py's cells."""
    import report
    recs = [r for r in rows if r.get("system") == system and r.get("test") == test]
    if any(report.unforwarded(r) for r in recs):
        return "n/a: no idle session reached the backend"
    return "failed" if any(r.get("system") == system for r in rows) else "not run"


def compare_groups(rows, meta):
    """The groups of bench/compare's chart, from report.py's METRICS and its reading of the raw
    lines (same medians, same exclusion of idle records that reached no backend)."""
    import report
    systems = meta.get("systems") or sorted({r.get("system") for r in rows if r.get("system")})
    others = [(s, name) for s, name in COMPARE_OTHERS
              if s in systems or any(r.get("system") == s for r in rows)]
    groups = []
    for key, label, test, fld, higher, target, _d in report.METRICS:
        if not any(r.get("test") == test for r in rows):
            continue   # not part of this run (IDLE_PRIMED=0, an older run, a test subset)
        g = Group(key, label.replace("`", ""),
                  "higher is better: bars are busway ÷ system" if higher
                  else "lower is better: bars are system ÷ busway")
        bw = dict(report.values(rows, "busway", test, fld))
        for s, name in others:
            if s == "direct" and key in report.NO_PROXY:
                continue   # no proxy, no figure: nothing to compare with
            ot = dict(report.values(rows, s, test, fld))
            if bw and ot:
                g.bars.append(bar_between(name, "busway", name, bw, ot, higher, key=s))
                continue
            why = []
            for who, vals, prefix in (("busway", bw, "busway: "), (s, ot, "")):
                if not vals:
                    why.append(prefix + missing_reason(rows, who, test))
            g.bars.append(Bar(name, missing="; ".join(why), key=s))
        if target and any(b.key == "haproxy" for b in g.bars):
            op, tv = target
            av, aop = target_in_advantage(op, tv, higher)
            hb = next(b for b in g.bars if b.key == "haproxy")
            verdict = "" if hb.value is None else (": met" if met(aop, av, hb.value) else ": NOT met")
            g.target = Target(av, aop, "haproxy ×2",
                              f"target busway/haproxy {sym(op)} {tv}×{verdict}")
            g.note += "; " + g.target.text
        if g.bars:
            groups.append(g)
    return groups


def compare_svg(rows, meta):
    """bench/compare's chart: busway's advantage over each other system, per metric."""
    import report
    groups = compare_groups(rows, meta)
    names = [b.series for g in groups for b in g.bars]
    series = [n for _, n in COMPARE_OTHERS if n in names]
    mach = report.machine(meta).replace("**", "")
    run = (f"Run {meta.get('run_id', '?')}: {meta.get('rounds', '?')} round(s), "
           f"{meta.get('duration', '?')} s per load test, {meta.get('idle_sessions', '?')} idle sessions.")
    return render(
        "busway advantage over each other system (bench/compare)",
        wrap(mach, 150) + [run],
        ["Bar = busway ÷ system for higher-is-better metrics, system ÷ busway for lower-is-better "
         "ones, of the medians over rounds:",
         "right of 1× busway does better, left it does worse (log scale). Whisker: lowest to "
         "highest per-round ratio. Targets apply to haproxy."],
        groups, series, left="busway behind", right="busway ahead")


# ---------------------------------------------------------------- bench/fanout

FANOUT_METRICS = [
    # label, key in fanout's rows ("one KEY" / "half KEY"), higher is better, target on half/one
    ("set-up + first reply p50 (µs)", "p50", False, None),
    ("set-up + first reply p99 (µs)", "p99", False, ("<=", 2.0)),
    ("throughput after the latch (Gbit/s)", "Gbit/s", True, (">=", 0.95)),
]


def fanout_svg(data):
    """bench/fanout's chart: half-duplex fan-out to 3 targets against one-to-one, through the
    same chain. `data` is what bench/fanout writes to fanout-latest.json: {"rows": {"one p50":
    [per round], …}, "rounds", "sessions", "bulk_mib"}. Fan-out is expected to cost something:
    the targets bound how much (bars left of 1× are normal, left of the target are not)."""
    rows = data["rows"]
    series = "half-duplex ÷ one-to-one"
    groups = []
    for label, k, higher, target in FANOUT_METRICS:
        half = dict(enumerate(rows.get(f"half {k}", [])))
        one = dict(enumerate(rows.get(f"one {k}", [])))
        g = Group(k, label, "higher is better: bars are half-duplex ÷ one-to-one" if higher
                  else "lower is better: bars are one-to-one ÷ half-duplex")
        if half and one:
            g.bars.append(bar_between(series, "half-duplex", "one-to-one", half, one, higher, key="half"))
        else:
            g.bars.append(Bar(series, missing="not measured", key="half"))
        if target:
            op, tv = target
            av, aop = target_in_advantage(op, tv, higher)
            b = g.bars[0]
            verdict = "" if b.value is None else (": met" if met(aop, av, b.value) else ": NOT met")
            g.target = Target(av, aop, series, f"target half/one {sym(op)} {tv}×{verdict}")
            g.note += "; " + g.target.text
        groups.append(g)
    return render(
        "Half-duplex fan-out to 3 targets against one-to-one (bench/fanout)",
        [f"{data.get('rounds', '?')} round(s), {data.get('sessions', '?')} sequential sessions and one "
         f"{data.get('bulk_mib', '?')} MiB upload each; the same ingress → egress chain."],
        ["Bar = half-duplex ÷ one-to-one for throughput, one-to-one ÷ half-duplex for latency, of the "
         "medians over rounds:",
         "right of 1× fan-out does better, left it costs (log scale). Whisker: lowest to highest "
         "per-round ratio."],
        groups, [series], left="half-duplex slower", right="half-duplex faster")


# ---------------------------------------------------------------- bench/grpc

def grpc_rounds(rows):
    """bench/grpc's raw load records grouped as {size: {kind: [per round]}}, kind being
    "direct", "gateway", "direct50" or "gateway50" (the 50 % runs are the ones with a rate).
    The script writes a size's rounds in order, so the i-th record of a kind is round i."""
    out = {}
    for r in rows:
        if r.get("mode") not in ("direct", "gateway") or "size" not in r:
            continue
        kind = r["mode"] + ("50" if r.get("rate") else "")
        out.setdefault(r["size"], {}).setdefault(kind, []).append(r)
    return out


def grpc_svg(rows, rounds=None, duration=None, clients=None):
    """bench/grpc's chart: the gateway (busway) against a tonic client streaming straight to the
    same upstreams, per message size: peak msg/s (target ≥ 0.5×), p99 at peak, and p99 at 50 %
    of the gateway's peak, whose target, at most 2 ms added, becomes the advantage
    direct ÷ (direct + 2 ms) at the direct client's median. Idle memory and failover have no
    second system to compare with and stay in the table."""
    series = "gateway vs direct tonic client"
    groups = []
    for size, kinds in sorted(grpc_rounds(rows).items()):
        name = f"{size} B" if size < 1024 or size % 1024 else f"{size // 1024} KiB"
        for label, subj, other, fld, higher in (
                ("msg/s at peak", "gateway", "direct", "msgs_per_s", True),
                ("p99 at peak (µs)", "gateway", "direct", "p99_us", False),
                ("p99 at 50 % of the gateway's peak (µs)", "gateway50", "direct50", "p99_us", False)):
            s = {i: r[fld] for i, r in enumerate(kinds.get(subj, [])) if r.get(fld) is not None}
            o = {i: r[fld] for i, r in enumerate(kinds.get(other, [])) if r.get(fld) is not None}
            g = Group(f"{size}-{subj}-{fld}", f"{name}: {label}",
                      "higher is better: bars are gateway ÷ direct" if higher
                      else "lower is better: bars are direct ÷ gateway")
            g.bars.append(bar_between(series, "gateway", "direct", s, o, higher, key="gateway")
                          if s and o else Bar(series, missing="not measured", key="gateway"))
            b = g.bars[0]
            if fld == "msgs_per_s":
                g.target = Target(0.5, ">=", series, "target ≥ 0.5×" + (
                    "" if b.value is None else (": met" if b.value >= 0.5 else ": NOT met")))
            elif subj == "gateway50" and o:
                d = statistics.median(o.values())
                av = d / (d + 2000.0)
                g.target = Target(av, ">=", series, "target ≤ 2 ms added" + (
                    "" if b.value is None else (": met" if b.value >= av else ": NOT met")))
            if g.target:
                g.note += "; " + g.target.text
            groups.append(g)
    # what the run was, from the records themselves when the caller does not say (chart.py grpc)
    loads = [r for kinds in grpc_rounds(rows).values() for rs in kinds.values() for r in rs]
    if rounds is None and loads:
        rounds = max(len(rs) for kinds in grpc_rounds(rows).values() for rs in kinds.values())
    if duration is None and loads:
        duration = round(statistics.median(r.get("duration_s", 0) for r in loads), 1)
    if clients is None and loads:
        clients = loads[0].get("clients", "?")
    run = (f"{rounds} round(s) of {duration:g} s, {clients} clients each keeping one message "
           f"outstanding; busway on its own core, one worker thread." if loads or rounds is not None
           else "No load records: nothing to compare.")
    return render(
        "busway's gRPC gateway against a direct tonic client (bench/grpc)", [run],
        ["Bar = gateway ÷ direct for msg/s, direct ÷ gateway for latency, of the medians over rounds:",
         "right of 1× the gateway does better, left it costs (log scale). Whisker: lowest to "
         "highest per-round ratio."],
        groups, [series], left="gateway behind", right="gateway ahead")


# ---------------------------------------------------------------- command line

def write(path, svg):
    """Writes through a temporary file, so a reader never sees half a chart."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(svg)
    os.replace(tmp, path)


def main(argv):
    if len(argv) >= 4 and argv[1] == "compare":
        import report
        meta = json.load(open(argv[3])) if len(argv) > 4 else {}
        write(argv[-1], compare_svg(report.load(argv[2]), meta))
    elif len(argv) == 4 and argv[1] == "fanout":
        write(argv[3], fanout_svg(json.load(open(argv[2]))))
    elif len(argv) == 4 and argv[1] == "grpc":
        import report
        write(argv[3], grpc_svg(report.load(argv[2])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
