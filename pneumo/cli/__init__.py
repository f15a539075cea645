"""The command line: ``python -m pneumo train|train-cv|evaluate|predict|calibrate-site|profile|bench|explain-eval|fit-guard|export``.

A user's mistake (a missing path, an unknown model, an empty folder) is one
sentence on stderr and exit code 2; a completed run exits 0.

``parser`` names every command and option; the handlers live by what they do:
``scoring`` (predict, evaluate), ``models`` (train, train-cv, operating-point,
fit-guard, calibrate-site), ``measuring`` (profile, bench, explain-eval) and
``exporting`` (export).
"""

from __future__ import annotations

import os
import sys

from pneumo.cli.common import EXIT_USAGE, UserError
from pneumo.cli.parser import build_parser
from pneumo.environment import quiet_tensorflow
from pneumo.io import FilmReadError
from pneumo.store import ModelStoreError

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_USAGE", "UserError", "build_parser", "main"]


EXIT_BROKEN_PIPE = 141
"""The exit status of a command whose reader closed the pipe (128 + SIGPIPE, as the shell reports it)."""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    The arguments are parsed first (the parser loads no TensorFlow), so ``--verbose`` can
    decide whether TensorFlow's start-up lines are hidden (:func:`quiet_tensorflow`).
    """
    args = build_parser().parse_args(argv)
    quiet_tensorflow(verbose=args.verbose)
    try:
        return int(args.handler(args) or 0)
    except (UserError, ModelStoreError, FileNotFoundError, FilmReadError, ValueError) as err:
        message = str(err).strip() or type(err).__name__
        print(f"pneumo {args.command}: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"pneumo {args.command}: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader left (``| head``): stop quietly as other Unix tools do, and keep Python's
        # exit-time flush of stdout from raising the same error again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
