"""Recorded oracle runs: a guest's snapshots as one small ``.tar.xz`` per
scenario (``tests/data/oracle/NAME.tar.xz``: the ``NN-STEP/`` folders, the
scenario's TOML and the kernel's release), so that the suite compares the
model with the real kernel without QEMU."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

#: where the repository keeps the recorded runs (relative to its root)
RECORDED = Path("tests") / "data" / "oracle"


def save_recording(snapshots: Path, dest: Path, toml_text: str) -> Path:
    """Pack the snapshot folders and the scenario text into ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    with tarfile.open(tmp, "w:xz", preset=9) as tf:
        for d in sorted(p for p in snapshots.iterdir() if p.is_dir()):
            tf.add(d, arcname=d.name)
        data = toml_text.encode()
        info = tarfile.TarInfo("scenario.toml")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    tmp.replace(dest)
    return dest


def open_recording(path: Path, into: Path) -> tuple[Path, str]:
    """Unpack a recording into ``into``; (its folder, the scenario text)."""
    with tarfile.open(path, "r:xz") as tf:
        tf.extractall(into, filter="tar")
    return into, (into / "scenario.toml").read_text()
