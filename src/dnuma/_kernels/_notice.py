"""The "compiling the kernels" line: shown on a terminal while numba compiles
(a cache miss: the first run, or after a kernel changed), and only then.

It lives on stderr as a progress line rewritten in place (``\\r``) and is
erased by :func:`end_compile_notice` before anything else is printed, so it
never shares a line with an error message.  No numba import here: the CLI
imports this module on every command.
"""

from __future__ import annotations

import sys
import time

_state = {"depth": 0, "compiled": 0, "t0": 0.0, "shown": False}


def compile_started() -> None:
    """A kernel's compilation begins (nested ones count once)."""
    if _state["depth"] == 0 and not _state["compiled"]:
        _state["t0"] = time.perf_counter()
    _state["depth"] += 1


def compile_ended() -> None:
    """A kernel's compilation ended: update the line."""
    _state["depth"] -= 1
    _state["compiled"] += 1
    if _state["depth"] == 0 and sys.stderr.isatty():
        secs = time.perf_counter() - float(_state["t0"])
        sys.stderr.write(f"\rdnuma: compiling the kernels (once; numba caches them): "
                         f"{_state['compiled']} compiled, {secs:.0f} s")
        sys.stderr.flush()
        _state["shown"] = True


def end_compile_notice() -> None:
    """Erase the line, if it is showing."""
    if _state["shown"]:
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()
        _state["shown"] = False
