"""dnuma: Dynamic NUMA, a fast model of the Linux 6.12 NUMA page allocator.

The physical-page -> node map (memlayout) can be changed at runtime, in place,
as the 2013 linux-mm DNUMA RFC proposed.  Heavy modules are imported lazily so
that ``dnuma --version`` stays fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "CommitReport",
    "Machine",
    "MachineConfig",
    "MemLayout",
    "__version__",
    "boot",
]

_LAZY = {
    "Machine": "dnuma.mm.machine",
    "MachineConfig": "dnuma.mm.machine",
    "boot": "dnuma.mm.machine",
    "MemLayout": "dnuma.mm.memlayout",
    "CommitReport": "dnuma.mm.dnuma",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'dnuma' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(mod), name)
