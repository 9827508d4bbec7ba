"""Reports of a run: metrics sampled over virtual time (:mod:`.metrics`),
figures (:mod:`.plots`, matplotlib imported only when a figure is drawn) and a
self-contained HTML page (:mod:`.html`)."""

from __future__ import annotations

from .html import write_report
from .metrics import LayoutMark, MapSnapshot, Metrics, read_series

__all__ = ["LayoutMark", "MapSnapshot", "Metrics", "read_series", "write_report"]
