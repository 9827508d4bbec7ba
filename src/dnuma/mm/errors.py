"""Typed exceptions of the model.  Every one leaves the state unchanged."""

from __future__ import annotations


class DnumaError(Exception):
    """Base class of every error the model raises on bad input."""


class ConfigError(DnumaError, ValueError):
    """A machine description that cannot be booted (names the field)."""


class LayoutError(DnumaError, ValueError):
    """A malformed or inapplicable memlayout (names the range and the rule)."""


class BadFreeError(DnumaError, ValueError):
    """A free of a pfn that is not the head of an allocated block of that order."""


class AllocArgError(DnumaError, ValueError):
    """Invalid arguments to alloc_pages (order, cpu, nid, policy)."""


class NotifyVeto(DnumaError):
    """A memlayout notifier refused a commit ("going" stage)."""

    def __init__(self, listener: str, reason: str) -> None:
        super().__init__(f"commit vetoed by {listener}: {reason}")
        self.listener = listener
        self.reason = reason


class ValidationError(DnumaError, AssertionError):
    """An invariant does not hold: names the invariant and the pfn or zone."""

    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"[{invariant}] {detail}")
        self.invariant = invariant
        self.detail = detail
