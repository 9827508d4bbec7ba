"""The one pseudo-random sequence of the compiled drivers: splitmix64 (the
kernel has no such generator; this is Vigna's, as java.util.SplittableRandom
has it) and the draws derived from it.

The state is a uint64 the caller owns, not numba's global generator, so a run
repeats exactly whatever else ran before.  :func:`splitmix64` takes and
returns it by value (kept in a local variable it costs ~2 ns a step, a numba
global-generator call ~20 ns); :func:`next_u01` steps a state held in a
1-element array.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel

GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's increment, 2**64 / phi
_TO_U01 = 1.0 / 9007199254740992.0  # 2**-53


@kernel
def splitmix64(s):
    """One splitmix64 step: (new state, a float in [0, 1))."""
    s = s + GOLDEN
    z = s
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return s, np.float64(z >> np.uint64(11)) * _TO_U01


@kernel
def next_u01(rng):
    """A float in [0, 1) from the state ``rng[0]``, which it steps."""
    rng[0], u = splitmix64(rng[0])
    return u


@kernel
def below(u, n):
    """A uniform integer in [0, n) from a float ``u`` in [0, 1)."""
    return min(np.int64(u * n), n - 1)


@kernel
def pick(u, cum):
    """The index drawn by ``u`` in [0, 1) from cumulative odds ``cum``
    (ascending, the last 1.0)."""
    for i in range(cum.shape[0]):
        if u < cum[i]:
            return i
    return cum.shape[0] - 1


@kernel
def exp_ns(u, mean_ns):
    """An exponential variate of mean ``mean_ns`` (ns, >= 1) from ``u`` in [0, 1)."""
    return max(np.int64(1), np.int64(-np.log(1.0 - u) * mean_ns))
