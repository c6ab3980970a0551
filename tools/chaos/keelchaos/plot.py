"""plot.svg: throughput and latency over time, fault windows shaded. Hand-written SVG
(no plotting library to install): top panel acknowledged sends per second (green) and
failed or unknown ones (red); bottom panel the latency of every acknowledged send
(log scale, at most a few thousand points). Each fault is a shaded band across both
panels, coloured by kind and numbered as in report.txt."""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

COLOURS = {
    "kill": "#e41a1c",
    "lose-unsynced": "#984ea3",
    "pause": "#ff7f00",
    "majority-minority": "#377eb8",
    "bridge": "#4daf4a",
    "one-way": "#a65628",
    "transfer-burst": "#f781bf",
}
WIDTH, LEFT, RIGHT = 1200, 70, 20
TOP_H, BOTTOM_H, GAP, HEAD, FOOT = 220, 260, 40, 40, 70
POINTS_MAX = 4000


def svg(series: dict, title: str = "") -> str:
    end = max(1.0, series.get("end", 0.0))
    for start, stop, _, _ in series.get("faults", []):
        end = max(end, stop)
    plot_w = WIDTH - LEFT - RIGHT
    height = HEAD + TOP_H + GAP + BOTTOM_H + FOOT

    def x(t: float) -> float:
        return LEFT + plot_w * t / end

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{LEFT}" y="20" font-size="14">{escape(title)}</text>',
    ]
    top_y, bottom_y = HEAD, HEAD + TOP_H + GAP

    # Fault windows across both panels; numbers where there is room for them.
    last_label_x = -1e9
    for start, stop, kind, fid in series.get("faults", []):
        colour = COLOURS.get(kind, "#999999")
        w = max(1.5, x(stop) - x(start))
        out.append(
            f'<rect x="{x(start):.1f}" y="{top_y}" width="{w:.1f}" height="{TOP_H + GAP + BOTTOM_H}" '
            f'fill="{colour}" fill-opacity="0.18"><title>fault {fid}: {escape(str(kind))} '
            f'{start:.1f}-{stop:.1f} s</title></rect>'
        )
        if x(start) - last_label_x >= 6 * len(str(fid)) + 4:
            out.append(f'<text x="{x(start) + 1:.1f}" y="{top_y - 3}" font-size="9" fill="{colour}">{fid}</text>')
            last_label_x = x(start)

    # Phases of the run (final heal, settling, final read).
    for i, (t, label) in enumerate(series.get("marks", [])):
        out.append(f'<line x1="{x(t):.1f}" y1="{top_y}" x2="{x(t):.1f}" y2="{top_y + TOP_H + GAP + BOTTOM_H}" '
                   f'stroke="#555" stroke-dasharray="4 3"/>')
        anchor = "end" if x(t) > WIDTH - RIGHT - 60 else "start"
        dx = -2 if anchor == "end" else 2
        out.append(f'<text x="{x(t) + dx:.1f}" y="{top_y + 10 + 11 * i}" font-size="9" fill="#555" '
                   f'text-anchor="{anchor}">{escape(label)}</text>')

    # Throughput.
    ok = series.get("ok_per_s", {})
    bad = series.get("bad_per_s", {})
    seconds = range(0, int(math.ceil(end)) + 1)
    peak = max([1] + [int(v) for v in ok.values()] + [int(v) for v in bad.values()])
    ymax = nice_ceiling(peak)

    def ty(v: float) -> float:
        return top_y + TOP_H - TOP_H * v / ymax

    out += axes(top_y, TOP_H, plot_w, [(ty(v), f"{v:g}") for v in ticks(0, ymax)], "sends / s")
    for data, colour in ((ok, "#1a9850"), (bad, "#d73027")):
        pts = " ".join(f"{x(s + 0.5):.1f},{ty(data.get(s, data.get(str(s), 0))):.1f}" for s in seconds)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.2"/>')

    # Latency, log scale.
    lat = series.get("latency_ms", [])
    if len(lat) > POINTS_MAX:
        step = len(lat) / POINTS_MAX
        lat = [lat[int(i * step)] for i in range(POINTS_MAX)] + [max(lat, key=lambda p: p[1])]
    lo_ms, hi_ms = 1.0, max([10.0] + [p[1] for p in lat])
    hi_ms = 10 ** math.ceil(math.log10(hi_ms))

    def ly(ms: float) -> float:
        ms = min(max(ms, lo_ms), hi_ms)
        return bottom_y + BOTTOM_H - BOTTOM_H * math.log10(ms / lo_ms) / math.log10(hi_ms / lo_ms)

    decades = [10**k for k in range(0, int(round(math.log10(hi_ms))) + 1)]
    out += axes(bottom_y, BOTTOM_H, plot_w, [(ly(d), f"{d:g}") for d in decades], "ack latency, ms (log)")
    for t, ms in lat:
        out.append(f'<circle cx="{x(t):.1f}" cy="{ly(ms):.1f}" r="1.3" fill="#2166ac" fill-opacity="0.5"/>')

    # Time axis.
    axis_y = bottom_y + BOTTOM_H
    for t in ticks(0, end):
        out.append(f'<line x1="{x(t):.1f}" y1="{axis_y}" x2="{x(t):.1f}" y2="{axis_y + 4}" stroke="black"/>')
        out.append(f'<text x="{x(t):.1f}" y="{axis_y + 16}" text-anchor="middle">{t:g}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2}" y="{axis_y + 32}" text-anchor="middle">seconds since start</text>')

    # Legend.
    lx, ly0 = LEFT, height - 14
    items = [("#1a9850", "acknowledged / s"), ("#d73027", "failed or unknown / s")] + [
        (c, k) for k, c in COLOURS.items()
    ]
    for colour, label in items:
        out.append(f'<rect x="{lx}" y="{ly0 - 9}" width="10" height="10" fill="{colour}" fill-opacity="0.6"/>')
        out.append(f'<text x="{lx + 14}" y="{ly0}">{escape(label)}</text>')
        lx += 20 + 7 * len(label)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def axes(y0: float, h: float, w: float, yticks, label: str) -> list[str]:
    out = [
        f'<rect x="{LEFT}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#444"/>',
        f'<text x="14" y="{y0 + h / 2}" transform="rotate(-90 14 {y0 + h / 2})" text-anchor="middle">{escape(label)}</text>',
    ]
    for y, text in yticks:
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + w}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{escape(text)}</text>')
    return out


def nice_ceiling(v: float) -> float:
    if v <= 0:
        return 1
    mag = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 5, 10):
        if v <= m * mag:
            return m * mag
    return 10 * mag


def ticks(lo: float, hi: float, n: int = 8) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    out, t = [], lo
    while t <= hi + 1e-9:
        out.append(round(t, 6))
        t += step
    return out
