"""How every ``af2`` command parses its arguments, reports errors and exits.

Exit statuses (:data:`EXIT_CODES`), the same for every verb and for the old ``python -m``
entry points:

- 0: all done;
- 1: partial; a rerun continues (records left pending, unreadable items skipped and reported);
- 2: the input or the configuration is wrong: a missing or unreadable input file, a directory
  where a file is expected, an output path in a missing folder, a bad or unknown flag, a bad
  config value, an unreachable server, a checkpoint that cannot be resumed. One line on
  stderr names the argument (a few more may list details, e.g. each damaged checkpoint);
  nothing is written.

Library code signals status 2 by raising :class:`af2.errors.InputError` (or a subclass);
:func:`run` prints it after ``PROG: error:``. Any other exception is a bug: it keeps its
traceback (status 1, Python's own).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Callable, Sequence

from af2.errors import InputError

__all__ = ["OK", "PARTIAL", "BAD_INPUT", "EXIT_CODES", "EPILOG", "Parser", "run"]

OK, PARTIAL, BAD_INPUT = 0, 1, 2
EXIT_CODES = {
    OK: "all done",
    PARTIAL: "partial: a rerun continues (records pending, unreadable items skipped and reported)",
    BAD_INPUT: "the input or the configuration is wrong (missing or unreadable input, a directory "
    "where a file is expected, an output path in a missing folder, a bad or unknown flag, "
    "a bad config value, an unreachable server, a checkpoint that cannot be resumed); nothing "
    "written",
}
EPILOG = "exit status:\n" + "\n".join(
    textwrap.fill(text, 92, initial_indent=f"  {code}  ", subsequent_indent=" " * 5)
    for code, text in EXIT_CODES.items()
)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (``PROG: argument --x: why (see PROG --help)``),
    exit status 2, and whose help ends with the exit statuses."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        kwargs.setdefault("epilog", EPILOG)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def fail(prog: str, message: str) -> int:
    """Print the one-line error of ``prog`` and return status 2."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return BAD_INPUT


def run(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, command: Callable[[argparse.Namespace], int]
) -> int:
    """Parse ``argv`` with ``parser`` and run ``command(args)``; return the exit status.

    ``--help`` returns 0 and a parse error 2 (instead of raising SystemExit), an
    :class:`~af2.errors.InputError` raised by the command becomes one line on stderr and 2.
    ``args.command_line`` is the command as typed (``PROG ARG ...``), for reports.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version or a parse error (already printed)
        return stop.code if isinstance(stop.code, int) else BAD_INPUT
    args.command_line = " ".join([parser.prog, *argv])
    try:
        return command(args)
    except InputError as err:
        return fail(parser.prog, str(err) or type(err).__name__)
