"""The bad-input corpus (tests/data/bad-inputs/*.toml), run as a user would:
each case is a ``dnuma`` command in a fresh folder holding the case's files.

A case that names ``expect`` must exit 2 with exactly one line on stderr,
``dnuma: error: ...``, holding every ``expect`` string (the input, the place,
what was wrong), no traceback, within ``timeout`` seconds and ``max_rss_mb``
of memory, and leave its folder as it found it.  A case with ``exit = 0``
must succeed and print JSON whose dotted keys hold the values of ``json``
(what a stream or a FIFO delivers is what the file holds).

Case keys: ``name``, ``kind`` (one of KINDS), ``argv``, ``files`` (name ->
text), ``setup`` (actions, below), ``stdin`` (text, or ``@NAME`` for a
file's bytes), ``stdout`` (a path to send stdout to, e.g. /dev/full),
``expect``, ``exit``, ``json``, ``timeout``, ``max_rss_mb``, ``root``
(needs root), ``xfail`` (why the case still fails: a known gap, strict).
Setup actions: ``copy DATA NAME`` (from tests/data), ``unxz DATA NAME``,
``truncate NAME BYTES``, ``bytes NAME HEX``, ``mkdir NAME``, ``gzip NAME``
and ``xz NAME`` (NAME.gz / NAME.xz beside it), ``fifo NAME FROM`` (a FIFO a
thread fills with FROM's bytes, once), ``mknod NAME`` (a character device
like /dev/null).
"""

from __future__ import annotations

import gzip
import json
import lzma
import os
import shutil
import stat
import subprocess
import sys
import threading
import tomllib
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"
CORPUS = DATA / "bad-inputs"
KINDS = ("data-loss", "destructive", "hang", "traceback", "silent", "where", "conflict",
         "edge")


def _cases() -> list[Any]:
    out = []
    for f in sorted(CORPUS.glob("*.toml")):
        for case in tomllib.loads(f.read_text())["case"]:
            marks = ([pytest.mark.xfail(reason=case["xfail"], strict=True)]
                     if "xfail" in case else [])
            out.append(pytest.param(case, id=f"{f.stem}:{case['name']}", marks=marks))
    return out


CASES = _cases()


def test_the_corpus_is_large_and_well_formed() -> None:
    names = [c.values[0]["name"] for c in CASES]
    assert len(names) >= 60
    assert len(set(names)) == len(names), "case names repeat"
    kinds = {c.values[0]["kind"] for c in CASES}
    assert kinds <= set(KINDS), kinds - set(KINDS)
    assert kinds == set(KINDS), f"no case of {set(KINDS) - kinds}"
    for c in CASES:
        case = c.values[0]
        assert ("expect" in case) != ("json" in case or case.get("exit") == 0), case["name"]


def _tree(d: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry below ``d``: (mode, size, mtime_ns)."""
    out = {}
    for p in sorted(d.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(d))] = (st.st_mode, st.st_size if stat.S_ISREG(st.st_mode) else 0,
                                      st.st_mtime_ns if stat.S_ISREG(st.st_mode) else 0)
    return out


def _setup(case: dict[str, Any], d: Path) -> list[threading.Thread]:
    for name, text in case.get("files", {}).items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(text)
    threads = []
    for action in case.get("setup", []):
        op, *args = action.split()
        if op == "copy":
            src, dst = DATA / args[0], d / args[1]
            if src.is_dir():
                shutil.copytree(src, dst)
            else:
                shutil.copyfile(src, dst)
        elif op == "truncate":
            os.truncate(d / args[0], int(args[1]))
        elif op == "gzip":
            (d / (args[0] + ".gz")).write_bytes(gzip.compress((d / args[0]).read_bytes()))
        elif op == "xz":
            (d / (args[0] + ".xz")).write_bytes(lzma.compress((d / args[0]).read_bytes()))
        elif op == "unxz":
            (d / args[1]).write_bytes(lzma.decompress((DATA / args[0]).read_bytes()))
        elif op == "fifo":
            os.mkfifo(d / args[0])
            payload = (d / args[1]).read_bytes()

            def fill(path: Path = d / args[0], data: bytes = payload) -> None:
                with open(path, "wb") as f:
                    f.write(data)
            t = threading.Thread(target=fill, daemon=True)
            t.start()
            threads.append(t)
        elif op == "bytes":
            (d / args[0]).write_bytes(bytes.fromhex(args[1]))
        elif op == "mkdir":
            (d / args[0]).mkdir()
        elif op == "mknod":
            os.mknod(d / args[0], 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        else:
            raise AssertionError(f"unknown setup action {op}")
    return threads


# the case's own peak RSS: VmHWM (kB) of its address space; getrusage's
# ru_maxrss would carry the forking pytest process's peak across the exec
_LAUNCH = ("import atexit, os, sys\n"
           "def peak():\n"
           "    for line in open('/proc/self/status'):\n"
           "        if line.startswith('VmHWM:'):\n"
           "            open(os.environ['DNUMA_TEST_RSS'], 'w').write(line.split()[1])\n"
           "atexit.register(peak)\n"
           "from dnuma.cli import main\n"
           "sys.argv[0] = 'dnuma'\n"
           "sys.exit(main())\n")
MEM_LIMIT = 8 << 30  # bytes of address space: a runaway case fails, not the machine


def _limit() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT, MEM_LIMIT))


def _run(case: dict[str, Any], d: Path, rss_file: Path) -> tuple[int, str, str, float]:
    """Exit code, stdout, stderr and peak RSS (MiB) of the case's command."""
    stdin = case.get("stdin")
    data = None
    if isinstance(stdin, str):
        data = (d / stdin[1:]).read_bytes() if stdin.startswith("@") else stdin.encode()
    out_target = case.get("stdout")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"),
           "COLUMNS": "80", "DNUMA_TEST_RSS": str(rss_file)}
    timeout = case.get("timeout", 20)
    with open(out_target or os.devnull, "wb") as sink:
        p = subprocess.Popen([sys.executable, "-c", _LAUNCH, *case["argv"]], cwd=d, env=env,
                             stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                             stdout=sink if out_target else subprocess.PIPE,
                             stderr=subprocess.PIPE, preexec_fn=_limit)
        try:
            out, err = p.communicate(data, timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            pytest.fail(f"{case['name']}: still running after {timeout} s")
    rss = int(rss_file.read_text()) / 1024 if rss_file.exists() else 0.0
    return p.returncode, (out or b"").decode(errors="replace"), err.decode(errors="replace"), rss


def _dig(doc: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


@pytest.fixture(scope="module")
def warm_kernels(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Compile (or load) the kernels the commands use, once, so that on a
    cold numba cache the cases' own processes only load them."""
    from dnuma.io.snapshot import load_snapshot, save_snapshot
    from dnuma.sim.replay import replay_trace
    from dnuma.sim.run import warm_up

    warm_up()
    replay_trace(DATA / "kmem-trace-excerpt.txt.xz", nodes=2)
    f = tmp_path_factory.mktemp("warm") / "m.dnsnap"
    save_snapshot(replay_trace(DATA / "kmem-trace-excerpt.txt.xz").machine, f)
    load_snapshot(f)


@pytest.mark.parametrize("case", CASES)
def test_case(case: dict[str, Any], tmp_path: Path, warm_kernels: None) -> None:
    if case.get("root") and os.geteuid() != 0:
        pytest.skip("needs root")
    d = tmp_path / "case"
    d.mkdir()
    threads = _setup(case, d)
    before = _tree(d)
    code, out, err, rss = _run(case, d, tmp_path / "rss")
    for t in threads:
        t.join(timeout=1)
    assert "Traceback" not in err, err
    assert rss <= case.get("max_rss_mb", 1500), f"peak RSS {rss:.0f} MiB"
    if "expect" in case:
        lines = err.splitlines()
        assert code == case.get("exit", 2), (code, err)
        assert len(lines) == 1 and lines[0].startswith("dnuma: error: "), err
        for s in case["expect"]:
            assert s in lines[0], f"{s!r} not in {lines[0]!r}"
        assert out == "" or case.get("stdout"), out
        assert _tree(d) == before, "the case's folder changed"
    else:
        assert code == case.get("exit", 0), err
        doc = json.loads(out)
        for key, want in case.get("json", {}).items():
            assert _dig(doc, key) == want, key
