"""``af2 info [--json]``: how af2 was built (version, torch, CUDA, CPU kernels)."""

from __future__ import annotations

import argparse
import json

HELP = "print how af2 was built (af2.build_info())"


def configure(parser: argparse.ArgumentParser, *, legacy: bool = False) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of aligned text")


def main(args: argparse.Namespace) -> int:
    from af2.build import build_info
    from af2.errors import InputError

    try:
        data = build_info()
    except ModuleNotFoundError:
        raise
    except ImportError as err:  # the core is missing, built for another torch, or refused
        raise InputError(f"the compiled core cannot be loaded: {' '.join(str(err).split())}") from None
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        width = max(map(len, data))
        for key, value in data.items():
            print(f"{key:<{width}}  {value}")
        if not data["cuda"]:
            print("note: CPU core only; this build has no CUDA kernels")
    return 0
