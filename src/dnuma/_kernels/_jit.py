"""The one place where numba's compilation flags are set.

numba's on-disk cache is keyed by each function's own source file, so a kernel
that inlines a changed kernel from another file would load stale machine code.
The cache therefore lives in a directory named by a hash of every kernel
source file: any change to any kernel recompiles them all.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import numba
import numba.core.event

from . import _notice

F = TypeVar("F", bound=Callable[..., Any])

# DNUMA_NO_JIT=1 runs every kernel as plain Python (for debugging and coverage).
JIT_DISABLED = os.environ.get("DNUMA_NO_JIT", "") not in ("", "0")
if JIT_DISABLED:
    # the kernels' uint64 arithmetic (splitmix64, hashes) wraps on purpose, as
    # compiled code does; numpy scalars would warn about it on stderr
    warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning,
                            r"dnuma\._kernels\.")

# Kernels run without numba's reference-counting runtime (NRT): with it, every
# call that passes the KState bundle increfs and decrefs each of its ~40
# arrays (measured ~430 ns a call; ~0.3 ns without).  Such kernels must not
# allocate arrays; the few that do use ``kernel_alloc``.
_FLAGS: dict[str, Any] = {"cache": True, "nogil": True, "boundscheck": False, "_nrt": False}
_ALLOC_FLAGS: dict[str, Any] = {"cache": True, "nogil": True, "boundscheck": False}


def _cache_dir() -> str:
    here = Path(__file__).parent
    h = hashlib.sha256()
    for src in sorted(here.glob("*.py")):
        h.update(src.name.encode())
        h.update(src.read_bytes())
    base = os.environ.get("DNUMA_CACHE_DIR") or str(here / "__pycache__")
    return str(Path(base) / f"numba-{h.hexdigest()[:16]}")


if not JIT_DISABLED and not os.environ.get("NUMBA_CACHE_DIR"):
    numba.config.CACHE_DIR = _cache_dir()  # type: ignore[attr-defined]


class _CompileListener(numba.core.event.Listener):
    """Feeds the "compiling the kernels" line (numba fires "numba:compile"
    only on a cache miss)."""

    def on_start(self, event: Any) -> None:
        _notice.compile_started()

    def on_end(self, event: Any) -> None:
        _notice.compile_ended()


if not JIT_DISABLED:
    numba.core.event.register("numba:compile", _CompileListener())


def kernel(fn: F) -> F:
    """Compile ``fn`` with the project's flags (or leave it as Python)."""
    if JIT_DISABLED:
        return fn
    return numba.njit(**_FLAGS)(fn)


def kernel_alloc(fn: F) -> F:
    """Like :func:`kernel`, for the few kernels that allocate arrays (with NRT)."""
    if JIT_DISABLED:
        return fn
    return numba.njit(**_ALLOC_FLAGS)(fn)


# A call that LLVM does not inline passes the KState bundle by value: every
# field of its ~45 arrays (data, shape, strides, ...) is pushed on the stack,
# ~350 words (measured 150-250 ns a call on the churn benchmark).  Kernels on
# the per-operation alloc/free path are therefore inlined at numba IR level;
# only rare slow paths (bulk frees, fallback steals, drains) stay real calls.


def kernel_inline(fn: F) -> F:
    """Like :func:`kernel`, inlined into its callers at numba IR level (for
    the per-operation alloc/free path; see the note above)."""
    if JIT_DISABLED:
        return fn
    return numba.njit(inline="always", **_FLAGS)(fn)


def _prefetch_py(arr: Any, idx: Any) -> None:
    """Plain-Python stand-in for :func:`prefetch` (DNUMA_NO_JIT)."""


if JIT_DISABLED:
    prefetch: Callable[[Any, Any], None] = _prefetch_py
else:
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def _prefetch(typingctx: Any, arr: Any, idx: Any) -> Any:
        """A cache-line prefetch hint for ``arr[idx]`` (no effect on results)."""
        sig = types.void(arr, idx)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]],
                                           wraparound=False)
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
            # read prefetch, high temporal locality, data cache
            builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
            return context.get_dummy_value()

        return sig, codegen

    prefetch = cast(Callable[[Any, Any], None], _prefetch)
