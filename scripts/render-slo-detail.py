"""Draws the SLO detail dashboard's main panels as one PNG, from the query results that
tests/dashboards.rs writes (BURNGUARD_DASHBOARD_PICTURE_DATA): the same queries, answered by
the test's Prometheus. Run through scripts/dashboard-picture.

    python render-slo-detail.py DATA.json OUT.png
"""

import json
import sys
from datetime import datetime, timezone

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

BG, PANEL, TEXT, GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"
STATUS_COLOURS = {"page": "#f2495c", "ticket": "#ff9830", "ok": "#73bf69",
                  "partial": "#fade2a", "no_data": "#5794f2", "error": "#b877d9"}
WINDOW_ORDER = ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "7d", "28d", "30d"]


def when(t):
    return datetime.fromtimestamp(t, tz=timezone.utc)


def duration(seconds):
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes and not days else ""]
    return "".join(parts) or "0"


def stat_text(panel):
    series = panel["series"]
    if not series:
        return "—", TEXT
    if panel["title"] == "Status":
        name = series[0]["legend"]
        return name, STATUS_COLOURS.get(name, TEXT)
    value = series[0]["points"][-1][1]
    unit = panel["unit"]
    if unit == "percentunit":
        colour = TEXT
        if panel["title"] == "Budget remaining":
            colour = "#f2495c" if value < 0 else "#ff9830" if value < 0.25 else "#73bf69"
        return f"{value * 100:.3g}%", colour
    if unit == "dtdurations":
        return duration(value), "#f2495c" if value < 86400 else TEXT
    return f"{value:g}", "#f2495c" if value >= 1 and panel["title"] != "Active freezes" else TEXT


def style(ax, title):
    ax.set_facecolor(PANEL)
    ax.set_title(title, color=TEXT, fontsize=10, loc="left")
    ax.tick_params(colors=TEXT, labelsize=8)
    for spine in ax.spines.values():
        spine.set_color(GRID)
    ax.grid(color=GRID, linewidth=0.5)


def window_key(series):
    legend = series["legend"]
    return WINDOW_ORDER.index(legend) if legend in WINDOW_ORDER else len(WINDOW_ORDER)


def plot(ax, panel, annotations, log=False, percent=False, scale=1.0, unit=""):
    style(ax, panel["title"])
    lines = [s for s in panel["series"] if s["refId"] == "A"]
    lines.sort(key=window_key)
    for s in lines:
        xs = [when(t) for t, _ in s["points"]]
        ys = [v * 100 if percent else v / scale for _, v in s["points"]]
        ax.plot(xs, ys, linewidth=1.2, label=s["legend"])
    for s in panel["series"]:
        if s["refId"] == "A":
            continue
        xs = [when(t) for t, _ in s["points"]]
        ys = [v * 100 if percent else v / scale for _, v in s["points"]]
        ax.plot(xs, ys, linewidth=1, linestyle="--", label=s["legend"])
    if log:
        ax.set_yscale("log")
    suffix = "%" if percent else unit
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}{suffix}"))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=timezone.utc))
    for name, colour in (("Incidents", "#f2495c"), ("Freezes", "#5794f2")):
        for s in annotations.get(name, []):
            times = [t for t, _ in s["points"]]
            if times:
                ax.axvspan(when(times[0]), when(times[-1]), color=colour, alpha=0.08)
    for s in annotations.get("Playbook steps", []):
        for t, _ in s["points"][:1]:
            ax.axvline(when(t), color="#ff9830", linewidth=0.8, linestyle=":")
    ax.legend(fontsize=7, ncol=2, facecolor=PANEL, edgecolor=GRID, labelcolor=TEXT, loc="upper left")


def main(data_path, out_path):
    data = json.load(open(data_path))
    panels = {p["title"]: p for p in data["panels"]}
    annotations = {p["title"].removeprefix("annotation: "): p["series"]
                   for p in data["panels"] if p["title"].startswith("annotation: ")}

    fig = plt.figure(figsize=(16, 11.5), facecolor=BG)
    fig.suptitle(f"burnguard / SLO detail — {data['slo']}   (shaded: incident open, blue: freeze, dotted: playbook steps)",
                 color=TEXT, fontsize=13, x=0.01, ha="left")
    grid = fig.add_gridspec(4, 8, height_ratios=[0.55, 2, 2, 1.7], hspace=0.45, wspace=0.35,
                            left=0.04, right=0.99, top=0.93, bottom=0.04)

    stats = ["Status", "Objective", "Budget remaining", "Time to exhaustion",
             "Firing alert rows", "Open incidents", "Active freezes"]
    for i, title in enumerate(stats):
        ax = fig.add_subplot(grid[0, i])
        ax.set_facecolor(PANEL)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color(GRID)
        text, colour = stat_text(panels[title])
        ax.text(0.5, 0.38, text, color=colour, fontsize=17, ha="center", va="center", weight="bold")
        ax.text(0.04, 0.86, title, color=TEXT, fontsize=8, ha="left", va="center")

    plot(fig.add_subplot(grid[1, 0:4]), panels["Error ratio per window"], annotations, log=True, percent=True)
    plot(fig.add_subplot(grid[1, 4:8]), panels["Burn rate per window"], annotations, log=True)
    burn_down = next(p for t, p in panels.items() if t.startswith("Budget burn-down"))
    ax = fig.add_subplot(grid[2, 0:5])
    plot(ax, burn_down, {}, percent=True)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %d", tz=timezone.utc))
    plot(fig.add_subplot(grid[2, 5:8]), panels["Time to exhaustion"], annotations, scale=86400, unit="d")
    rows = sorted((t for t in panels if t.startswith("Alert row ")),
                  key=lambda t: WINDOW_ORDER.index(t.split()[-1]))
    for i, title in enumerate(rows[:4]):
        plot(fig.add_subplot(grid[3, 2 * i:2 * i + 2]), panels[title], annotations, log=True)

    fig.savefig(out_path, dpi=80, facecolor=BG)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
