"""Boot real Linux under QEMU for an oracle scenario and bring back the
guest's snapshots.

The guest is TCG (``-accel tcg,thread=single -cpu qemu64``: KVM fails while
this kernel decompresses on this kind of host, and multi-threaded TCG now and
then panics the guest at boot with an int3 Oops while the kernel patches its
own text; one thread is as fast on a 2-core host), its initramfs a static busybox whose
``/init`` (guest_init.sh) runs the scenario's steps and prints every
snapshot as ``tar | gzip | base64`` between marker lines on the serial
console.  The kernel is Debian's ``linux-image-6.12.117+deb12-amd64-unsigned``
unpacked (never installed); ``make oracle`` fetches it into ``.oracle/``.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from ..mm.errors import DnumaError
from .qmp import Qmp, QmpError
from .scenario import MAX_DIMMS, OracleScenario

KERNEL_RELEASE = "6.12.117+deb12-amd64"
KERNEL_PACKAGE = f"linux-image-{KERNEL_RELEASE}-unsigned"
BEGIN, END = b"=====DNUMA-ORACLE-BEGIN=====", b"=====DNUMA-ORACLE-END====="
BOOT_TIMEOUT_S = 600


class OracleError(DnumaError):
    """The live oracle cannot run (no QEMU, no kernel) or the guest failed."""


def find_kernel(explicit: str | None = None) -> Path:
    """The guest kernel: ``explicit``, $DNUMA_ORACLE_KERNEL, or the one
    ``make oracle`` unpacked under ./.oracle/."""
    for cand in (explicit, os.environ.get("DNUMA_ORACLE_KERNEL"),
                 f".oracle/kernel/boot/vmlinuz-{KERNEL_RELEASE}"):
        if cand and Path(cand).is_file():
            return Path(cand)
    raise OracleError(f"no guest kernel: run `make oracle` (it unpacks {KERNEL_PACKAGE} "
                      "into .oracle/), or give DNUMA_ORACLE_KERNEL")


WORKLOAD = ".oracle/dnuma-workload"


def find_workload(workdir: Path) -> Path:
    """The traced workload's static binary: $DNUMA_ORACLE_WORKLOAD, the one
    ``make oracle`` built (./.oracle/dnuma-workload), or one built now with
    gcc into ``workdir``."""
    for cand in (os.environ.get("DNUMA_ORACLE_WORKLOAD"), WORKLOAD):
        if cand and Path(cand).is_file():
            return Path(cand)
    if not shutil.which("gcc"):
        raise OracleError("no traced workload: run `make oracle` (it builds .oracle/"
                          "dnuma-workload with gcc -static), or give DNUMA_ORACLE_WORKLOAD")
    out = workdir / "dnuma-workload"
    with resources.as_file(resources.files("dnuma.oracle") / "workload.c") as src:
        r = subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(src)],
                           capture_output=True, text=True)
    if r.returncode:
        raise OracleError(f"gcc -static could not build the traced workload (apt-get install "
                          f"libc6-dev): {r.stderr.strip()[-300:]}")
    return out


def _newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A cpio archive in the kernel's initramfs format ("newc"): (path,
    mode, data) each; directories have mode 0o040755 and no data."""
    out = io.BytesIO()
    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], 1):
        nb = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0)
        out.write(b"070701" + b"".join(b"%08x" % f for f in fields) + nb)
        out.write(b"\0" * (-(110 + len(nb)) % 4) + data + b"\0" * (-len(data) % 4))
    return out.getvalue()


def initramfs(sc: OracleScenario, busybox: str | None = None,
              workload: Path | None = None) -> bytes:
    """The guest's initramfs (gzip): busybox, /init, the scenario's /steps
    and, for a traced scenario, ``workload`` as /bin/dnuma-workload."""
    bb = busybox or shutil.which("busybox") or "/bin/busybox"
    if not Path(bb).is_file():
        raise OracleError("no static busybox: apt-get install busybox-static")
    init = (resources.files("dnuma.oracle") / "guest_init.sh").read_bytes()
    dirs = [(d, 0o040755, b"") for d in ("bin", "proc", "sys", "dev", "tmp", "out")]
    files = [("bin/busybox", 0o100755, Path(bb).read_bytes()), ("init", 0o100755, init),
             ("steps", 0o100644, sc.steps_script().encode())]
    if sc.traced:
        if workload is None:
            raise OracleError(f"{sc.name}: a traced scenario needs the workload binary")
        files.append(("bin/dnuma-workload", 0o100755, workload.read_bytes()))
    return gzip.compress(_newc(dirs + files), 6)


def qemu_args(sc: OracleScenario, kernel: Path, initrd: Path,
              qmp: Path | None = None) -> list[str]:
    """The QEMU command line of the scenario's machine; with DIMMs to hot-add,
    room for them (``slots``, ``maxmem``) and the QMP socket ``qmp``."""
    mem = f"{sc.mem >> 20}M"
    if sc.hotplug_bytes:
        mem += f",slots={MAX_DIMMS},maxmem={(sc.mem + sc.hotplug_bytes) >> 20}M"
    args = ["qemu-system-x86_64", "-accel", "tcg,thread=single", "-cpu", "qemu64",
            "-nographic", "-no-reboot", "-m", mem, "-smp", str(sc.nr_cpus),
            "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", "console=ttyS0 quiet panic=-1"]
    for i, n in enumerate(sc.nodes):
        spec = f"node,nodeid={i}"
        if n.cpus:
            spec += f",cpus={n.cpus[0]}-{n.cpus[-1]}" if n.cpus == tuple(
                range(n.cpus[0], n.cpus[-1] + 1)) else "".join(f",cpus={c}" for c in n.cpus)
        if n.mem:
            args += ["-object", f"memory-backend-ram,id=m{i},size={n.mem}"]
            spec += f",memdev=m{i}"
        args += ["-numa", spec]
    if sc.distance:
        for a, row in enumerate(sc.distance):
            for b, d in enumerate(row):
                if a != b:
                    args += ["-numa", f"dist,src={a},dst={b},val={d}"]
    if qmp is not None:
        args += ["-qmp", f"unix:{qmp},server=on,wait=off"]
    return args


def qmp_request(q: Qmp, words: list[str]) -> None:
    """The guest's ``dnuma-oracle: qmp add ID NODE BYTES`` or ``remove ID``."""
    if words[0] == "add":
        dimm, node, size = words[1], int(words[2]), int(words[3])
        q.execute("object-add", **{"qom-type": "memory-backend-ram", "id": f"mem-{dimm}",
                                   "size": size})
        q.execute("device_add", driver="pc-dimm", id=dimm, memdev=f"mem-{dimm}", node=node)
    elif words[0] == "remove":
        q.execute("device_del", id=words[1])


def run_guest(sc: OracleScenario, workdir: Path, kernel: str | None = None,
              progress: Callable[[str], None] | None = None) -> Path:
    """Boot the scenario's guest, run its steps and unpack the snapshots into
    ``workdir/snapshots/NN-STEP/``; the console log is ``workdir/console.log``.
    Returns the snapshots' folder."""
    if not shutil.which("qemu-system-x86_64"):
        raise OracleError("no qemu-system-x86_64: apt-get install qemu-system-x86")
    k = find_kernel(kernel)
    workdir.mkdir(parents=True, exist_ok=True)
    initrd = workdir / "initrd.gz"
    initrd.write_bytes(initramfs(sc, workload=find_workload(workdir) if sc.traced else None))
    log = bytearray()
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        sockdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dnuma-qmp-")))
        qmp_path = sockdir / "qmp" if sc.hotplug_bytes else None
        p = stack.enter_context(subprocess.Popen(
            qemu_args(sc, k, initrd, qmp_path), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        q = stack.enter_context(Qmp(qmp_path)) if qmp_path else None
        assert p.stdout is not None
        for line in p.stdout:
            log += line
            if line.startswith(b"dnuma-oracle: step") and progress:
                progress(f"{sc.name}: {line.decode().split()[2]} "
                         f"({time.perf_counter() - t0:.0f} s)")
            if line.startswith(b"dnuma-oracle: qmp") and q is not None:
                try:
                    qmp_request(q, line.decode().split()[2:])
                except QmpError as exc:  # the guest waits, then snapshots what is
                    log += f"dnuma-oracle: host: {exc}\n".encode()
            if time.perf_counter() - t0 > BOOT_TIMEOUT_S:
                p.kill()
                break
    (workdir / "console.log").write_bytes(bytes(log))
    text = bytes(log).replace(b"\r", b"")
    if BEGIN not in text or END not in text:
        last = text.strip().splitlines()[-1:] or [b"(nothing)"]
        raise OracleError(f"{sc.name}: the guest printed no snapshot; its console ended "
                          f"with {last[0][:120].decode(errors='replace')!r} (all of it: "
                          f"--keep DIR keeps DIR/{sc.name}/console.log)")
    payload = text.split(BEGIN + b"\n", 1)[1].split(END, 1)[0]
    out = workdir / "snapshots"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(base64.b64decode(payload)))) as tf:
        tf.extractall(out, filter="tar")
    return out
