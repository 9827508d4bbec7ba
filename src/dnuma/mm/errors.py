"""Typed exceptions of the model, and the argument checks the public entry
points share.  Every error leaves the state unchanged.

The checks refuse what Python would quietly convert (a float pfn truncated,
a bool taken for 0/1, a string parsed by numpy) or what would fail deeper
down with an untyped error (numba's TypingError on a float, OverflowError on
a value that does not fit an int64, MemoryError on an absurd size): they run
once per public call, before any kernel, never in a per-page loop.
"""

from __future__ import annotations

import errno
import os
from typing import Any

import numpy as np


class DnumaError(Exception):
    """Base class of every error the model raises on bad input."""


class ConfigError(DnumaError, ValueError):
    """A machine description that cannot be booted (names the field)."""


class LayoutError(DnumaError, ValueError):
    """A malformed or inapplicable memlayout (names the range and the rule)."""


class ArgError(DnumaError, ValueError):
    """A bad argument to a public call: wrong type or out of range (names it)."""


class BadFreeError(ArgError):
    """A free of a pfn that is not the head of an allocated block of that order."""


class AllocArgError(ArgError):
    """Invalid arguments to the allocator calls and the node/zone/cpu views
    (order, cpu, nid, gfp, owner, policy)."""


class NotifyVeto(DnumaError):
    """A notifier refused a change at its "going" stage (a commit, a CPU move,
    a distance change); nothing changed."""

    def __init__(self, listener: str, reason: str) -> None:
        super().__init__(f"vetoed by {listener}: {reason}")
        self.listener = listener
        self.reason = reason


class HotplugError(DnumaError):
    """A memory or CPU hotplug request the kernel refuses, with the errno it
    returns (``errno``: the positive value, ``errname``: "EINVAL", "EBUSY",
    ...), e.g. a write to ``memoryB/state`` or ``cpuN/online``; the message
    names what was wrong.  The machine is left as the kernel leaves it (see
    each call: a refused request changes nothing)."""

    def __init__(self, errname: str, detail: str) -> None:
        super().__init__(f"{errname}: {detail}")
        self.errname = errname
        self.errno = int(getattr(errno, errname))
        self.detail = detail


class ValidationError(DnumaError, AssertionError):
    """An invariant does not hold: names the invariant and the pfn or zone."""

    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"[{invariant}] {detail}")
        self.invariant = invariant
        self.detail = detail


# ---------------------------------------------------------------- checks
def show(value: Any) -> str:
    """A short description of a bad value for a message: its type and repr."""
    r = repr(value)
    if len(r) > 40:
        r = r[:37] + "..."
    return f"{type(value).__name__} {r}"


def is_int(value: Any) -> bool:
    """An integer the model takes: a Python or numpy integer, never a bool
    (nor a float, even an integral one, nor a string)."""
    return (type(value) is int or isinstance(value, np.integer)
            or (isinstance(value, int) and not isinstance(value, bool)))


def check_int(name: str, value: Any, lo: int, hi: int, err: type[DnumaError] = ArgError,
              note: str = "", *, closed: bool = False) -> int:
    """``value`` as an int in [lo, hi) ([lo, hi] when ``closed``) or ``err``
    naming ``name`` (``note``, e.g. the limit's kernel name, follows the range)."""
    if type(value) is not int:
        if not is_int(value):
            raise err(f"{name}: expected an integer, got {show(value)}")
        value = int(value)
    if not lo <= value < hi + closed:
        rng = f"[{lo}, {hi}]" if closed else f"[{lo}, {hi})"
        raise err(f"{name}: {value} outside {rng}{note}")
    return value


def check_int_array(name: str, value: Any, err: type[DnumaError] = ArgError) -> np.ndarray:
    """``value`` as a 1-d numpy integer array (not copied when it is one), or
    ``err``: bools, floats, strings and objects are refused, not converted."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:  # ragged nested lists
        raise err(f"{name}: not an array of integers ({e})") from None
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "O" and arr.size and all(is_int(v) for v in arr.ravel()):
            raise err(f"{name}: integers beyond the int64 range")
        raise err(f"{name}: expected integers, got an array of dtype {arr.dtype}")
    if arr.ndim != 1:
        raise err(f"{name}: expected a 1-d array, got shape {arr.shape}")
    return arr


def first_outside(arr: np.ndarray, lo: int, hi: int) -> int:
    """Index of the first element of ``arr`` outside [lo, hi), or -1
    (vectorised; exact for any integer dtype)."""
    if arr.size == 0:
        return -1
    bad = np.flatnonzero((arr < lo) | (arr >= hi))
    return int(bad[0]) if bad.size else -1


#: a fixed cap on the bytes of model state one machine may hold (about 2 TiB
#: of 4 KiB pages at 15 1/8 bytes a pfn); None: only the memory available
MAX_STATE_BYTES: int | None = 8 << 30


def available_bytes() -> int | None:
    """Bytes of memory this process could still get: MemAvailable, else free
    physical pages; None when the platform tells neither."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) << 10
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def check_bytes(what: str, needed: int, err: type[DnumaError] = ConfigError,
                available: bool = True) -> None:
    """Refuse (``err``, saying how many bytes) building something of
    ``needed`` bytes beyond MAX_STATE_BYTES or (``available``) the memory
    this process could get."""
    cap = MAX_STATE_BYTES
    if cap is not None and needed > cap:
        raise err(f"{what}: would need {needed:,} bytes of model state, more than the "
                  f"cap of {cap:,} bytes (errors.MAX_STATE_BYTES)")
    avail = available_bytes() if available else None
    if avail is not None and needed > avail:
        raise err(f"{what}: would need {needed:,} bytes of model state, more than the "
                  f"{avail:,} bytes of memory available")
