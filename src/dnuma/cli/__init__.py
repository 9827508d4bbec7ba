"""The ``dnuma`` command: the parser and ``main``.  Each command lives in
its module (:mod:`.run`: demo, run, replay; :mod:`.layout`; :mod:`.boot`;
:mod:`.snapshot`; :mod:`.bench`); heavy imports wait for the command, so that
``dnuma --version`` stays fast."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .. import __version__
from .._kernels._notice import end_compile_notice
from ..mm.errors import DnumaError
from . import bench, boot, layout, oracle, run, snapshot

__all__ = ["build_parser", "main"]


class Parser(argparse.ArgumentParser):
    """argparse, with a bad command line reported like every other error:
    one line ``dnuma: error: [COMMAND: ]MESSAGE`` on stderr, exit 2."""

    def _print_message(self, message: str, file: Any = None) -> None:
        # argparse drops write errors; --help > /dev/full must not exit 0
        if message:
            f = file or sys.stderr
            f.write(message)
            f.flush()

    def error(self, message: str) -> NoReturn:
        cmd = self.prog.removeprefix("dnuma").strip()
        self.exit(2, f"dnuma: error: {cmd + ': ' if cmd else ''}{message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="dnuma",
               description="Dynamic NUMA: a model of the Linux NUMA page allocator whose "
                           "pfn->node map changes at runtime.")
    p.add_argument("--version", action="version", version=f"dnuma {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    run.add_run_parsers(sub)
    layout.add_parser(sub)
    run.add_replay_parser(sub)
    boot.add_parser(sub)
    snapshot.add_parser(sub)
    bench.add_parser(sub)
    oracle.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help/--version 0
        return int(exc.code or 0)
    except OSError as exc:  # --help or --version could not be written
        return _stdout_failed(exc)
    if not getattr(args, "func", None):
        print("dnuma: error: no COMMAND given (see dnuma --help)", file=sys.stderr)
        return 2
    try:
        code = int(args.func(args))
        sys.stdout.flush()
        return code
    except BrokenPipeError:  # e.g. `dnuma run demo --json | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        end_compile_notice()
        print("dnuma: interrupted", file=sys.stderr)
        return 130
    except DnumaError as exc:  # one clear line unless --debug
        if args.debug:
            raise
        end_compile_notice()
        print(f"dnuma: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if args.debug or exc.filename is not None:
            raise
        return _stdout_failed(exc)


def _stdout_failed(exc: OSError) -> int:
    """stdout filled up or failed (e.g. /dev/full): say so once, and give the
    interpreter's final flush nowhere to fail.  Exit 2."""
    end_compile_notice()
    print(f"dnuma: error: stdout: {exc.strerror}", file=sys.stderr)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 2
