"""The ``mc-hull`` command line: subcommands registered from one module each."""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

from .. import __version__
from ..errors import ComputeError, McHullError

#: Subcommand modules under mc_hull.cli; each defines ``register(subparsers)``.
COMMANDS = ("run", "query", "dashboard", "plot", "submit", "hull-test")  # submit also registers status, logs, stop
#: Subcommand name -> the module of COMMANDS that registers it.
MODULE_OF = {**{name: name for name in COMMANDS}, "status": "submit", "logs": "submit", "stop": "submit"}


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit status 2."""

    def error(self, message):  # noqa: D401 - argparse hook
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand; given ``argv`` naming one, only that one's module is imported.

    Each module imports what its command needs (``run``: the solvers, SciPy's optimizers, Ray's
    plumbing), so ``mc-hull query`` or ``mc-hull dashboard`` need not load the others: about 1 s of
    imports.  With no subcommand in ``argv`` (``--help``, a typo) every one is registered, so the
    help and the "invalid choice" error list them all.
    """
    parser = Parser(prog="mc-hull", description="Certified Monte Carlo estimates of "
                    "p(d, N) = P(x in conv(X_1..X_N)) on Ray, with results in Parquet.")
    parser.add_argument("--version", action="version", version=f"mc-hull {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    first = next((a for a in (argv or []) if not a.startswith("-")), None)
    for name in ([MODULE_OF[first]] if first in MODULE_OF else COMMANDS):
        import_module(f"{__name__}.{name.replace('-', '_')}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for bad input, with one line on stderr)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ComputeError as exc:   # a failure while computing, not bad input
        print(f"mc-hull: error: {one_line(exc, 600)}", file=sys.stderr)
        return 1
    except McHullError as exc:
        print(f"mc-hull: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`mc-hull query DIR | head`): stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # a file system or object store that cannot be reached or written
        print(f"mc-hull: error: {type(exc).__name__}: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mc-hull: interrupted; committed shards are kept and a re-run resumes", file=sys.stderr)
        return 130


def one_line(exc: BaseException, limit: int = 400) -> str:
    """An exception's message on one line (newlines and runs of spaces collapsed), cut at ``limit``."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def run_main() -> None:  # pragma: no cover - console script wrapper
    sys.exit(main())
