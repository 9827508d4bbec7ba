"""Figures of a run, as PNG bytes (matplotlib's Agg renderer, imported only
when a figure is drawn; no pyplot, so no global state or display).

* :func:`memory_map_png`: the physical memory map at every snapshot, layout
  above actual ``page_nid``, with the share of pages off their layout node;
* :func:`misplaced_png`: misplaced and marked pages over time, and the pages
  moved (on free and off the free lists);
* :func:`node_bars_png`: present / free / allocated / misplaced pages per node
  at the end of each phase;
* :func:`local_share_png`: the share of allocations that were node-local.

Node colours are the same in every figure (:func:`node_color`).
"""

from __future__ import annotations

import colorsys
import io
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .metrics import LayoutMark, MapSnapshot, Metrics, columns_by_node

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: matplotlib's tab10, for nodes 0..9
TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
HOLE_COLOR = "#e4e4e4"  # holes and pfns no layout range covers
_GOLDEN = 0.618033988749895
_DPI = 100


def node_color(nid: int) -> str:
    """A fixed colour for node ``nid``: tab10 for 0..9, then golden-ratio hues
    (any nid up to MAX_MAX_NUMNODES); -1 (hole) is light grey."""
    if nid < 0:
        return HOLE_COLOR
    if nid < len(TAB10):
        return TAB10[nid]
    k = nid - len(TAB10)
    h = (0.07 + k * _GOLDEN) % 1.0
    s = (0.55, 0.75, 0.95)[k % 3]
    v = (0.80, 0.60, 0.95)[(k // 3) % 3]
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def _rgb(nid: int) -> tuple[float, float, float]:
    c = node_color(nid)
    return int(c[1:3], 16) / 255, int(c[3:5], 16) / 255, int(c[5:7], 16) / 255


def _figure(w: float, h: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=_DPI, layout="constrained")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return buf.getvalue()


def _hex_locator(span: int, nticks: int = 8) -> float:
    """A power-of-two pfn step giving at most ~``nticks`` ticks over ``span`` pfns."""
    step = 1 << max(0, math.ceil(math.log2(max(1, span) / nticks)))
    return float(step)


def _scale(k: float) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """Forward and inverse of x -> x * k (pages -> MiB for a secondary axis)."""

    def fwd(x: Any) -> Any:
        return np.asarray(x, dtype=np.float64) * k

    def inv(x: Any) -> Any:
        return np.asarray(x, dtype=np.float64) / k

    return fwd, inv


def _pfn_axis(ax: Axes, pfn_end: int, page_size: int, top: bool) -> None:
    """Hex pfn ticks below; if ``top``, MiB ticks above."""
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    ax.xaxis.set_major_locator(MultipleLocator(_hex_locator(pfn_end)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _p: f"{int(x):#x}"))
    ax.set_xlim(0, pfn_end)
    if top:
        sec = ax.secondary_xaxis("top", functions=_scale(page_size / float(1 << 20)))
        sec.set_xlabel("MiB", fontsize=8, labelpad=2)
        sec.tick_params(labelsize=8)


def _event_lines(ax: Axes, events: Sequence[LayoutMark], label: bool, y: float = 0.99) -> None:
    """A dotted vertical line at each commit, labelled with its name at height
    ``y`` (axes fraction)."""
    tr = ax.get_xaxis_transform()
    for ev in events:
        if ev.kind != "commit":
            continue
        ax.axvline(ev.t, color="#555555", lw=0.9, ls=":", zorder=1)
        if label:
            ax.text(ev.t, y, f" {ev.name}", transform=tr, ha="left", va="top",
                    fontsize=8, color="#333333", rotation=0, clip_on=True)


def _seen_nodes(snaps: Sequence[MapSnapshot]) -> list[int]:
    """The nodes holding any pfn in any snapshot (in the layout or the pages)."""
    seen: set[int] = set()
    for s in snaps:
        for c in (s.layout_counts, s.actual_counts):
            seen.update(int(j) for j in np.flatnonzero(c[:, :-1].any(axis=0)))
    return sorted(seen)


def _legend_handles(nodes: Sequence[int], hole: bool = True) -> list[Any]:
    from matplotlib.patches import Patch

    hs = [Patch(facecolor=node_color(n), edgecolor="none", label=f"node {n}") for n in nodes]
    if hole:
        hs.append(Patch(facecolor=HOLE_COLOR, edgecolor="#999999", lw=0.5, label="hole"))
    return hs


def memory_map_png(metrics: Metrics, snapshots: Sequence[MapSnapshot] | None = None) -> bytes:
    """The physical memory map, one row per snapshot (boot, each event, end):
    the effective layout's node, the actual ``page_nid`` and, thin below in
    grey levels, the share of the bin's pages off their layout node.  A bin
    holding pfns of several nodes is drawn in bands, one per node, as tall as
    its share (so a stripe finer than a bin looks mixed, not like the bin's
    majority)."""
    snaps = list(snapshots) if snapshots is not None else \
        [e.snapshot for e in metrics.events if e.snapshot is not None]
    if not snaps:
        raise ValueError("no memory-map snapshots to draw")
    nodes = _seen_nodes(snaps)
    n = len(snaps)
    fig = _figure(11.0, 0.95 + 0.82 * n)
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    page_size = metrics.m.profile.page_size
    for i, (ax, s) in enumerate(zip(axes, snaps, strict=True)):
        k = s.layout_counts.shape[1]  # the nodes, then holes (the hole colour)
        lut = np.array([_rgb(j) for j in range(k - 1)] + [_rgb(-1)])
        off = np.repeat((1.0 - 0.9 * s.differ)[None, :, None], 3, axis=2)  # white -> black
        rows = (_bands(s.layout_counts, lut), _bands(s.actual_counts, lut), off)
        edges = ((0.0, 1.0), (1.06, 2.06), (2.16, 2.56))  # layout | pages | off
        for img, (top, bot) in zip(rows, edges, strict=True):
            ax.imshow(img, aspect="auto", interpolation="nearest",
                      extent=(0, s.nbins * s.bin_pfns, bot, top))
        ax.set_ylim(edges[-1][1], 0)
        ax.set_yticks([0.5, 1.56, 2.36], ["layout", "pages", "off"], fontsize=8)
        ax.tick_params(axis="y", length=0)
        ax.tick_params(axis="x", labelsize=8)
        for sp in ax.spines.values():
            sp.set_linewidth(0.5)
        mis = int(s.off.sum())
        ax.set_title(f"{s.name}  (t = {s.t:g} s, layout seq {s.seq}; {mis} pages off "
                     f"their layout node)", fontsize=9, loc="left", pad=3)
        _pfn_axis(ax, s.pfn_end, page_size, top=(i == 0))
    axes[-1].set_xlabel(f"pfn (bins of {snaps[-1].bin_pfns} pfns, a mixed bin in bands by "
                        "node share; 'off': share of the bin's pages not on their layout "
                        "node, white 0 -> black 1)", fontsize=8)
    fig.legend(handles=_legend_handles(nodes), loc="outside right upper", fontsize=8,
               frameon=False)
    return _png(fig)


def _bands(counts: np.ndarray, lut: np.ndarray, height: int = 16) -> np.ndarray:
    """An image (height, bins, 3) of per-bin node counts (bins, k): each bin a
    column of bands, node by node, each as tall as that node's share."""
    tot = np.maximum(counts.sum(axis=1, keepdims=True), 1)
    cum = np.cumsum(counts, axis=1) / tot  # (bins, k), last column 1
    y = (np.arange(height) + 0.5) / height
    idx = (cum[None, :, :] <= y[:, None, None]).sum(axis=2)  # (height, bins)
    return lut[np.minimum(idx, counts.shape[1] - 1)]


def misplaced_png(metrics: Metrics) -> bytes:
    """Top: misplaced and marked pages over time (per node thin); bottom: the
    cumulative pages moved on free and free pages moved by commits."""
    from matplotlib.ticker import EngFormatter

    cols = metrics.columns()
    t = cols["t"]
    fig = _figure(11.0, 5.6)
    ax, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    per = columns_by_node(cols, "misplaced")
    for nid, v in per.items():
        if v.any():
            ax.plot(t, v, color=node_color(nid), lw=1.0, alpha=0.85,
                    label=f"misplaced on node {nid}")
    ax.plot(t, cols["misplaced"], color="black", lw=1.8, label="misplaced (all nodes)")
    ax.plot(t, cols["marked"], color="#9a4dff", lw=1.3, ls="--", label="marked")
    ax.set_ylabel("pages")
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(EngFormatter(sep=""))
    sec = ax.secondary_yaxis("right",
                             functions=_scale(metrics.m.profile.page_size / float(1 << 20)))
    sec.set_ylabel("MiB")
    _event_lines(ax, metrics.events, label=True)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.07, 1.0), frameon=False)
    ax.set_title("Allocated pages on a node other than the layout's (they move when freed)",
                 fontsize=10, loc="left")
    ax2.plot(t, cols["moved_on_free"], color="#2a7f62", lw=1.5,
             label="moved on free (cumulative)")
    ax2.plot(t, cols["moved_off_freelists"], color="#b5651d", lw=1.5, drawstyle="steps-post",
             label="free pages moved by commits\n(cumulative)")
    ax2.set_ylabel("pages")
    ax2.set_ylim(bottom=0)
    ax2.yaxis.set_major_formatter(EngFormatter(sep=""))
    ax2.set_xlabel("virtual time (s)")
    _event_lines(ax2, metrics.events, label=False)
    ax2.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.07, 1.0), frameon=False)
    for a in (ax, ax2):
        a.grid(axis="y", lw=0.4, alpha=0.5)
        a.set_xlim(t[0], t[-1] if t[-1] > t[0] else t[0] + 1)
    return _png(fig)


_BAR_FIELDS = (("present", "#c8c8c8"), ("free", "#7cc47c"), ("allocated", "#5b8fd1"),
               ("misplaced", "#333333"))


def phase_rows(metrics: Metrics) -> list[tuple[str, int]]:
    """(label, sample row) at the end of each phase: the boot sample, the last
    sample before each later commit, and the last sample."""
    evs = [e for e in metrics.events if e.kind == "commit"]
    out: list[tuple[str, int]] = []
    t = metrics.columns()["t"]
    names = ["boot"] + [e.name for e in evs]
    ends = [e.row - 1 for e in evs] + [metrics.nsamples - 1]
    starts = [0] + [e.row for e in evs]
    for name, s, e in zip(names, starts, ends, strict=True):
        row = max(s, e)
        out.append((f"{name}: end of phase, t = {t[row]:g} s", row))
    return out


def node_bars_png(metrics: Metrics, rows: Sequence[tuple[str, int]] | None = None) -> bytes:
    """Grouped bars per node (present, free, allocated, misplaced pages), one
    panel per (label, sample row); default: the end of each phase."""
    from matplotlib.ticker import EngFormatter

    panels = list(rows) if rows is not None else phase_rows(metrics)
    cols = metrics.columns()
    nodes = metrics.nodes
    n = len(panels)
    ncol = min(n, 4)
    nrow = -(-n // ncol)
    fig = _figure(max(5.0, 2.9 * ncol + 1.6), 0.6 + 2.6 * nrow)
    axes = fig.subplots(nrow, ncol, sharey=True, squeeze=False).ravel()
    x = np.arange(len(nodes))
    w = 0.8 / len(_BAR_FIELDS)
    for ax, (label, row) in zip(axes, panels, strict=False):
        for k, (f, c) in enumerate(_BAR_FIELDS):
            v = np.array([cols[f"node{nid}_{f}"][row] for nid in nodes])
            ax.bar(x + (k - 1.5) * w, v, w, color=c, label=f, edgecolor="none")
        ax.set_xticks(x, [str(nid) for nid in nodes], fontsize=8)
        for tl, nid in zip(ax.get_xticklabels(), nodes, strict=True):
            tl.set_color(node_color(nid))
            tl.set_fontweight("bold")
        ax.set_title(label, fontsize=9, loc="left")
        ax.set_xlabel("node", fontsize=8)
        ax.yaxis.set_major_formatter(EngFormatter(sep=""))
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", lw=0.4, alpha=0.5)
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[0].set_ylabel("pages")
    fig.legend(handles=axes[0].get_legend_handles_labels()[0], loc="outside right upper",
               fontsize=8, frameon=False)
    return _png(fig)


def local_share_png(metrics: Metrics) -> bytes:
    """Top: the share of allocations between two samples that were node-local
    (numastat local_node / (local_node + other_node)); bottom: the pages
    allocated from each node per second of virtual time (stacked)."""
    from matplotlib.ticker import EngFormatter, PercentFormatter

    cols = metrics.columns()
    t = cols["t"]
    dt = np.diff(t, prepend=t[:1])
    keep = dt > 0  # drop zero-length intervals (the sample taken at a commit)
    keep[0] = False
    fig = _figure(11.0, 5.0)
    ax, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=(1, 1))
    ax.plot(t[keep], cols["local_share"][keep], color="black", lw=1.6,
            drawstyle="steps-pre", label="all allocations")
    ax.set_ylim(-0.03, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("local allocations")
    ax.set_title("Share of allocations served by the allocating CPU's node (numastat "
                 "local_node / (local_node + other_node))", fontsize=10, loc="left")
    loc = columns_by_node(cols, "local_node")
    oth = columns_by_node(cols, "other_node")
    rates, labels, colors = [], [], []
    for nid in loc:
        served = np.diff(loc[nid] + oth[nid], prepend=(loc[nid] + oth[nid])[:1])
        if not served.any():
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            rates.append(np.where(keep, served / np.where(keep, dt, 1.0), 0.0)[keep])
        labels.append(f"node {nid}")
        colors.append(node_color(nid))
    if rates:
        ax2.stackplot(t[keep], *rates, labels=labels, colors=colors, step="pre", alpha=0.9)
    ax2.set_ylabel("pages allocated / s")
    ax2.yaxis.set_major_formatter(EngFormatter(sep=""))
    ax2.set_xlabel("virtual time (s)")
    ax2.set_title("Where allocations were served from (pages per second, by node)",
                  fontsize=10, loc="left")
    for a in (ax, ax2):
        a.grid(axis="y", lw=0.4, alpha=0.5)
        a.set_xlim(t[0], t[-1] if t[-1] > t[0] else t[0] + 1)
    _event_lines(ax, metrics.events, label=True, y=0.6)
    _event_lines(ax2, metrics.events, label=False)
    ax2.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _png(fig)


def _local_share_axes(ax: Any) -> None:
    """The bottom panel of the side-by-side figures: the local share, 0-100%."""
    from matplotlib.ticker import PercentFormatter

    ax.set_ylim(-0.03, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("local allocations")
    ax.set_xlabel("virtual time (s)")
    ax.set_title("Share of allocations served by the allocating CPU's node (numastat)",
                 fontsize=10, loc="left")


def _side_by_side_axes(axes: Sequence[Any], marks: Sequence[float], t_end: float) -> None:
    """Dotted lines at ``marks`` (s), a light grid, [0, t_end], the legend outside."""
    for a in axes:
        for tc in marks:
            a.axvline(tc, color="0.4", lw=0.8, ls=":")
        a.grid(axis="y", lw=0.4, alpha=0.5)
        a.set_xlim(0, t_end)
        a.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def versus_png(arms: Mapping[str, Metrics], from_nid: int, to_nid: int, at: float) -> bytes:
    """DNUMA next to hotplug (sim.versus), one line per arm: top, the pages
    node ``to_nid`` holds and node ``from_nid`` keeps; bottom, the share of
    allocations that were node-local between two samples."""
    from matplotlib.ticker import EngFormatter

    fig = _figure(11.0, 5.5)
    ax, ax2 = fig.subplots(2, 1, sharex=True)
    styles = {"dnuma": "-", "hotplug": "--"}
    t_end = at
    for arm, mt in arms.items():
        cols = mt.columns()
        t = cols["t"]
        t_end = max(t_end, float(t[-1]))
        present = columns_by_node(cols, "present")
        ls = styles.get(arm, ":")
        for nid in (to_nid, from_nid):
            if nid in present:
                ax.plot(t, present[nid], ls=ls, color=node_color(nid), lw=1.6,
                        drawstyle="steps-post", label=f"{arm}: node {nid}")
        keep = np.diff(t, prepend=t[:1]) > 0
        ax2.plot(t[keep], cols["local_share"][keep], ls=ls, color="black", lw=1.4,
                 drawstyle="steps-pre", label=arm)
    ax.set_ylabel("present pages")
    ax.yaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_title(f"Node {from_nid}'s memory to node {to_nid} at {at:g} s: present pages "
                 "(solid: DNUMA commit, dashed: hotplug)", fontsize=10, loc="left")
    _local_share_axes(ax2)
    _side_by_side_axes((ax, ax2), [at], t_end)
    return _png(fig)


def policies_png(runs: Mapping[str, Metrics], commits: Sequence[tuple[float, str]]) -> bytes:
    """One scenario under each migration policy (sim.policies), one line per
    policy: top, the pages left off their layout node; bottom, the share of
    allocations that were node-local between two samples.  ``commits``:
    (t, step name), drawn as dotted lines."""
    from matplotlib.ticker import EngFormatter

    fig = _figure(11.0, 5.5)
    ax, ax2 = fig.subplots(2, 1, sharex=True)
    styles = ("-", "--", "-.", ":")
    t_end = 0.0
    for k, (label, mt) in enumerate(runs.items()):
        cols = mt.columns()
        t = cols["t"]
        t_end = max(t_end, float(t[-1]))
        mis = sum(columns_by_node(cols, "misplaced").values())
        ls = styles[k % len(styles)]
        ax.plot(t, mis, ls=ls, color=f"C{k}", lw=1.5, drawstyle="steps-post", label=label)
        keep = np.diff(t, prepend=t[:1]) > 0
        ax2.plot(t[keep], cols["local_share"][keep], ls=ls, color=f"C{k}", lw=1.3,
                 drawstyle="steps-pre", label=label)
    ax.set_ylabel("misplaced pages")
    ax.yaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_title("Allocated pages not on their layout node, per migration policy",
                 fontsize=10, loc="left")
    _local_share_axes(ax2)
    _side_by_side_axes((ax, ax2), [tc for tc, _name in commits], t_end)
    for tc, name in commits:
        ax.annotate(name, (tc, 1.0), xycoords=("data", "axes fraction"), fontsize=8,
                    xytext=(2, -10), textcoords="offset points")
    return _png(fig)


def all_figures(metrics: Metrics) -> dict[str, bytes]:
    """Every figure, by name: memory_map, misplaced, node_bars, local_share."""
    return {"memory_map": memory_map_png(metrics), "misplaced": misplaced_png(metrics),
            "node_bars": node_bars_png(metrics), "local_share": local_share_png(metrics)}
