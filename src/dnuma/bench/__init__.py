"""``dnuma bench``: the performance targets, measured with same-run baselines.

:mod:`~dnuma.bench.harness` times operations (warm-up, repeats, median,
interleaved baselines) and formats results; :mod:`~dnuma.bench.baselines`
holds what this machine does natively (a numpy pass, a dense table lookup,
the host kernel's page population, interpreter start-up);
:mod:`~dnuma.bench.machines` builds the big machines and rewinds their
state; :mod:`~dnuma.bench.cases` has one function per benchmark.
"""

from ..mm.errors import DnumaError

#: the benchmarks in the README's order (kept here, import-free, so that
#: building the CLI parser stays cheap: ``dnuma --version`` is benchmarked)
NAMES = ("seed-stripe", "tib-stripe", "boot-tib", "lookup", "churn", "replay", "export",
         "online-tib", "offline-gib", "startup")


class BenchError(DnumaError):
    """A benchmark that cannot run: bad input (a missing trace, no repeats)
    or a baseline that failed or disagrees with the model."""
