"""Argument types shared by every ``af2`` verb.

Each is an argparse ``type=``: it checks the value when the command line is parsed, before
anything is read or written, and raises ``argparse.ArgumentTypeError`` with a short reason,
which the parser prints as ``af2 VERB: argument --input: no such file: x.jsonl`` (exit 2).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = [
    "input_file",
    "input_dir",
    "output_file",
    "output_dir",
    "positive_int",
    "nonnegative_int",
    "positive_float",
    "override",
    "flags",
    "add_seed",
    "add_device",
    "add_config",
    "add_log_level",
]


def input_file(value: str) -> Path:
    """An existing, readable file (not a directory)."""
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such file: {value}")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a directory, expected a file")
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise argparse.ArgumentTypeError(f"cannot read {value}: {err.strerror or err}") from None
    return path


def input_dir(value: str) -> Path:
    """An existing directory that can be listed."""
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such directory: {value}")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is not a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot read the directory {value}")
    return path


def output_file(value: str) -> Path:
    """A file to write: its folder must exist (it is not created), the path must not be a directory."""
    path = Path(value)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a directory, expected a file")
    folder = path.parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"the folder {folder} does not exist (create it first)")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise argparse.ArgumentTypeError(f"cannot write {value}: permission denied")
    return path


def output_dir(value: str) -> Path:
    """A folder to write into: created (with its parents) when the command runs; must not be a file."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} exists and is not a directory")
    existing = next(p for p in (path, *path.parents) if p.exists())  # "." or "/" at the latest
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{existing} is a file, so {value} cannot be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write into {existing}: permission denied")
    return path


def _number(value: str, kind, minimum, name: str):
    try:
        number = kind(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {name}, got {value!r}") from None
    if not number >= minimum:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return number


def positive_int(value: str) -> int:
    """An integer >= 1."""
    return _number(value, int, 1, "an integer")


def nonnegative_int(value: str) -> int:
    """An integer >= 0."""
    return _number(value, int, 0, "an integer")


def positive_float(value: str) -> float:
    """A number > 0."""
    number = _number(value, float, 0.0, "a number")
    if number == 0.0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {value}")
    return number


def override(value: str) -> str:
    """A ``--set`` item: ``key.sub=value`` (the value is read as YAML by the verb)."""
    key, sep, _ = value.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise argparse.ArgumentTypeError(f"expected KEY.SUB=VALUE, got {value!r}")
    return value


def add_config(
    parser: argparse.ArgumentParser,
    *,
    help: str,
    set_help: str = "override a config key (dotted name; the value is YAML); repeatable",
) -> None:
    """``--config FILE`` (required) and ``--set KEY=VALUE`` (repeatable)."""
    parser.add_argument("--config", required=True, type=input_file, metavar="FILE", help=help)
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], type=override, metavar="KEY=VALUE", help=set_help
    )


def add_seed(parser: argparse.ArgumentParser, *, default: int | None = 0, help: str = "random seed") -> None:
    parser.add_argument("--seed", type=nonnegative_int, default=default, help=help)


def add_device(
    parser: argparse.ArgumentParser, *, help: str = "cpu, cuda or cuda:N (default: cuda when available)"
) -> None:
    parser.add_argument("--device", default=None, type=_device, help=help)


def _device(value: str) -> str:
    kind, _, index = value.partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()) or (kind == "cpu" and index):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {value!r}")
    return value


def flags(new: str, *old: str, legacy: bool) -> tuple[str, ...]:
    """The option strings of a flag: ``new`` and, for an old entry point (``legacy``), the old
    names it had there (``flags("--input", "--in", legacy=True)``)."""
    return (new, *old) if legacy else (new,)


def add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="the least severe log messages shown (default INFO)",
    )
