"""A self-contained HTML report of a run: one file, figures embedded as
``data:`` PNG URIs, inline CSS, no scripts and no external references."""

from __future__ import annotations

import base64
import html
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from .metrics import NODE_FIELDS, Metrics

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em auto;
max-width:1180px;padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.8em;
border-bottom:1px solid #ddd;padding-bottom:.2em}
.sub{color:#666;font-size:.9em;margin-top:0}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #d8d8d8;padding:.25em .55em}
th{background:#f3f3f3;text-align:left;font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums}
table.kv th{width:16em}table.kv table.kv{margin:0;font-size:1em}
table.kv table.kv th{width:auto;background:#fafafa}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.88em;color:#444;margin-top:.3em}
.sw{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.4em;
vertical-align:-.05em}
.note{font-size:.85em;color:#555}
"""

#: figure name -> (heading, one-line caption saying what to look at)
CAPTIONS: dict[str, tuple[str, str]] = {
    "memory_map": (
        "Physical memory map",
        "Each row is the map at one instant: the layout's node per pfn bin (top strip), the "
        "node the pages are on (middle) and, in grey levels (black: all), the share of the "
        "bin's pages still off their layout node. Right after a commit only allocated pages "
        "are off; the grey fades as they are freed and moved."),
    "misplaced": (
        "Misplaced pages over time",
        "Misplaced pages jump at each commit (by the allocated pages it marked) and decay as "
        "they are freed: the slope is the convergence speed. Below: pages moved on free "
        "against free pages moved off the free lists by the commits."),
    "node_bars": (
        "Memory per node",
        "Present, free, allocated and misplaced pages per node at the end of each phase: "
        "look for nodes a layout fills (onlined) or empties (offlined), and what is left "
        "misplaced when the next change comes."),
    "local_share": (
        "Local allocations",
        "The share of allocations between two samples served by the allocating CPU's node "
        "(numastat local_node / (local_node + other_node)); it falls when a layout moves "
        "memory away from the CPUs' nodes."),
}

_EVENT_COLS = (
    ("t", "t (s)"), ("name", "event"), ("seq", "seq"), ("commit_ms", "commit ms"),
    ("ranges", "ranges"), ("pages_marked", "pages marked"),
    ("free_pages_moved", "free pages moved"), ("blocks_split", "blocks split"),
    ("nodes_onlined", "onlined"), ("nodes_offlined", "offlined"),
    ("misplaced_after", "misplaced after commit"),
    ("misplaced_left", "misplaced left (before next event)"),
    ("moved_on_free_since_prev", "moved on free since previous event"),
    ("moved_on_free_after", "moved on free until next event"),
)
_METRIC_KEYS = {"events", "event_rows", "nodes"}


def fmt(v: Any) -> str:
    """A table cell: thousands separators for ints, 4 significant digits for
    floats, '–' for None/NaN/empty lists, comma-joined lists."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.4g}"
    if isinstance(v, list | tuple):
        return ", ".join(fmt(x) for x in v) if v else "–"
    if isinstance(v, Mapping):
        return ", ".join(f"{k}={fmt(x)}" for k, x in v.items()) or "–"
    return str(v)


def _td(v: Any) -> str:
    cls = ' class="n"' if isinstance(v, int | float) and not isinstance(v, bool) else ""
    return f"<td{cls}>{html.escape(fmt(v))}</td>"


def table(rows: Sequence[Mapping[str, Any]], cols: Sequence[tuple[str, str]] | None = None,
          caption: str | None = None) -> str:
    """An HTML table of ``rows`` (dicts); ``cols``: (key, header) pairs, default
    every key of the first row."""
    if not rows:
        return '<p class="note">(none)</p>'
    cols = list(cols) if cols is not None else [(k, k) for k in rows[0]]
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for _k, h in cols) + "</tr>")
    for r in rows:
        out.append("<tr>" + "".join(_td(r.get(k)) for k, _h in cols) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _kv(items: Mapping[Any, Any]) -> str:
    """A two-column key/value table; mapping values become nested tables."""
    rows = []
    for k, v in items.items():
        cell = f"<td>{_kv(v)}</td>" if isinstance(v, Mapping) and v else _td(v)
        rows.append(f"<tr><th>{html.escape(str(k))}</th>{cell}</tr>")
    return '<table class="kv">' + "".join(rows) + "</table>"


def _img(name: str, png: bytes) -> str:
    b64 = base64.b64encode(png).decode("ascii")
    head, cap = CAPTIONS.get(name, (name, ""))
    return (f"<h2>{html.escape(head)}</h2>\n<figure><img alt=\"{html.escape(head)}\" "
            f"src=\"data:image/png;base64,{b64}\">\n"
            f"<figcaption>{html.escape(cap)}</figcaption></figure>")


def _node_table(metrics: Metrics) -> str:
    from .plots import node_color

    nodes = metrics.final_nodes()
    mib = metrics.m.profile.page_size / float(1 << 20)
    head = ["node", *NODE_FIELDS[:7], "MiB present", *NODE_FIELDS[8:]]
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for nid, f in nodes.items():
        sw = f'<span class="sw" style="background:{node_color(nid)}"></span>'
        on = "" if f["online"] else " (offline)"
        cells = [f"<td>{sw}{nid}{html.escape(on)}</td>"]
        cells += [_td(f[k]) for k in NODE_FIELDS[:7]]
        cells.append(_td(round(f["present"] * mib, 2)))
        cells += [_td(f[k]) for k in NODE_FIELDS[8:]]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def write_report(out_dir: str | Path, title: str, summary: Mapping[str, Any], metrics: Metrics,
                 extra_tables: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
                 figures: Mapping[str, bytes] | None = None,
                 write_images: bool = False) -> Path:
    """Write ``out_dir/report.html`` and return its path.

    title: the page title; summary: what was run (scalars and small dicts go
    in the header table, lists of dicts become tables; the keys ``events``,
    ``event_rows`` and ``nodes`` are left to the metrics' own tables);
    extra_tables: heading -> rows (dicts) shown after the figures; figures:
    name -> PNG bytes (default :func:`plots.all_figures`); write_images: also
    write each figure as ``out_dir/<name>.png``.  Calls ``metrics.finish()``
    (a no-op if the driver already did).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics.finish()  # the "end" snapshot, if the driver did not take it
    if figures is None:
        from .plots import all_figures

        figures = all_figures(metrics)
    if write_images:
        for name, png in figures.items():
            (out / f"{name}.png").write_bytes(png)
    ms = metrics.to_summary()
    run_kv: dict[str, Any] = {}
    run_tables: list[tuple[str, Sequence[Mapping[str, Any]]]] = []
    for k, v in summary.items():
        if k in _METRIC_KEYS:
            continue
        if isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v):
            run_tables.append((str(k), v))
        else:
            run_kv[str(k)] = v
    tot = ms["totals"]
    mach = ms["machine"]
    totals = {
        "virtual time": f"{ms['t_start']:g} s to {ms['t_end']:g} s, {ms['samples']} samples",
        "machine": (f"{mach['profile']}, {mach['page_size'] >> 10} KiB pages, "
                    f"{tot['present']:,} present pages, {mach['cpus']} CPUs"),
        "layout seq at the end": tot["seq"],
        "nodes online at the end": tot["nodes_online"],
        "allocated pages": tot["allocated"],
        "free pages": tot["free"],
        "misplaced pages left": tot["misplaced"],
        "marked pages left": tot["marked"],
        "pages moved on free (cumulative)": tot["moved_on_free"],
        "free pages moved by commits (cumulative)": tot["moved_off_freelists"],
        "local allocations over the run": (
            "–" if tot["local_share_overall"] is None
            else f"{100 * tot['local_share_overall']:.1f} %"),
    }
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>", f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="sub">dnuma {html.escape(__version__)} · generated '
        f"{html.escape(time.strftime('%Y-%m-%d %H:%M:%S'))} · counts are in pages of "
        f"{mach['page_size'] >> 10} KiB</p>",
        "<h2>What was run</h2>", _kv(run_kv) if run_kv else '<p class="note">(no details)</p>',
    ]
    for name, rows in run_tables:
        parts += [f"<h2>{html.escape(name)}</h2>", table(rows)]
    parts += ["<h2>At the end of the run</h2>", _kv(totals),
              "<h2>Layout changes</h2>",
              '<p class="note">One row per commit. "misplaced left": allocated pages still '
              "off their layout node at the last sample before the next event (or the end); "
              '"moved on free": pages redirected to their new node when freed.</p>',
              table(ms["event_rows"], _EVENT_COLS)]
    for name, png in figures.items():
        parts.append(_img(name, png))
    parts += ["<h2>Nodes at the end of the run</h2>", _node_table(metrics)]
    for name, rows in (extra_tables or {}).items():
        parts += [f"<h2>{html.escape(str(name))}</h2>", table(rows)]
    parts.append("</body></html>\n")
    path = out / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
