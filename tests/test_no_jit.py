"""The kernels also run as plain Python (DNUMA_NO_JIT=1, what ``make coverage``
uses): the same operations give the same state as the compiled kernels."""

from __future__ import annotations

import json
import os
import subprocess
import sys

_SCRIPT = r"""
import json, random
from dnuma.mm.machine import boot
from dnuma.mm.memlayout import MemLayout
from dnuma.mm.validate import validate_all
m = boot(2, "16M", 2)
rng = random.Random(3)
live = []
for _ in range(600):
    if live and rng.random() < 0.4:
        p, o = live.pop(rng.randrange(len(live)))
        m.free_pages(p, o, cpu=rng.randrange(2))
    else:
        o = rng.randrange(4)
        p = m.alloc_pages(o, cpu=rng.randrange(2))
        if p is not None:
            live.append((p, o))
rep = m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1, 2], 100))
for p, o in live[::2]:
    m.free_pages(p, o, cpu=0)
m.vmstat_tick()
validate_all(m)
print(json.dumps({"report": [rep.pages_marked, rep.free_pages_moved, rep.blocks_split],
                  "nid": m.S.page_nid.tolist(), "flags": m.S.page_flags.tolist(),
                  "free": m.nr_free_pages(), "moved": m.moved_on_free}))
"""


def _run(no_jit: bool) -> dict:
    env = {**os.environ, "DNUMA_NO_JIT": "1" if no_jit else "0"}
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                         text=True, timeout=300, check=True)
    return json.loads(out.stdout)


def test_plain_python_kernels_agree_with_compiled():
    plain, compiled = _run(True), _run(False)
    assert plain["report"][0] > 0 and plain["moved"] > 0  # the redirect paths ran
    assert plain == compiled
