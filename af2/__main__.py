"""Command line: ``python -m af2 info`` prints how af2 was built."""
from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m af2", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="print af2.build_info()")
    info.add_argument("--json", action="store_true", help="print JSON instead of aligned text")
    args = parser.parse_args(argv)

    if args.command == "info":
        import af2

        data = af2.build_info()
        if args.json:
            print(json.dumps(data, indent=2))
        else:
            width = max(map(len, data))
            for key, value in data.items():
                print(f"{key:<{width}}  {value}")
            if not data["cuda"]:
                print("note: CPU core only; this build has no CUDA kernels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
