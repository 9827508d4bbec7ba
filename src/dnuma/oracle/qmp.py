"""A minimal QMP client (QEMU's JSON machine protocol over a unix socket):
enough to hot-add and hot-remove a ``pc-dimm`` while the oracle's guest runs.

QEMU listens with ``-qmp unix:PATH,server=on,wait=off``; the client reads
the greeting, enters command mode (``qmp_capabilities``) and sends one
command at a time, skipping the asynchronous events QEMU interleaves.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from ..mm.errors import DnumaError


class QmpError(DnumaError):
    """QEMU refused a QMP command, or its socket did not answer."""


class Qmp:
    """One QMP connection; ``execute`` returns a command's ``return`` value."""

    def __init__(self, path: Path, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(timeout_s)
                self.sock.connect(str(path))
                break
            except OSError as exc:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise QmpError(f"QMP socket {path.name}: {exc.strerror}") from None
                time.sleep(0.05)
        self.buf = b""
        self._read()  # the greeting: {"QMP": {...}}
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except OSError as exc:
                raise QmpError(f"QMP: {exc}") from None
            if not chunk:
                raise QmpError("QMP: QEMU closed the socket")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, command: str, **arguments: Any) -> Any:
        msg: dict[str, Any] = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if "event" in reply:
                continue
            if "error" in reply:
                raise QmpError(f"QMP {command}: {reply['error'].get('desc', reply['error'])}")
            return reply.get("return")

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Qmp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
