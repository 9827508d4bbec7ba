"""The one place where numba's compilation flags are set."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import numba

F = TypeVar("F", bound=Callable[..., Any])

# DNUMA_NO_JIT=1 runs every kernel as plain Python (for debugging and coverage).
_DISABLED = os.environ.get("DNUMA_NO_JIT", "") not in ("", "0")

_FLAGS: dict[str, Any] = {"cache": True, "nogil": True, "boundscheck": False}


def kernel(fn: F) -> F:
    """Compile ``fn`` with the project's flags (or leave it as Python)."""
    if _DISABLED:
        return fn
    return numba.njit(**_FLAGS)(fn)  # type: ignore[no-any-return]
