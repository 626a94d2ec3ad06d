"""``af2 synth --output DIR [--n 2000] [--seed 0]``: write a synthetic AudioSkills set.

DIR gets ``clips/``, ``long/``, ``manifest.jsonl`` and ``metadata.json`` (it is created, with
its parents). The same seed writes the same bytes.
"""

from __future__ import annotations

import argparse
import json
import logging

from af2.cli.args import add_seed, flags, nonnegative_int, output_dir, positive_float, positive_int
from af2.errors import ConfigError

HELP = "write a synthetic AudioSkills set (clips, long scenes, manifest)"


def configure(parser: argparse.ArgumentParser, *, legacy: bool = False) -> None:
    parser.add_argument(
        *flags("--output", "--out", legacy=legacy),
        dest="output",
        required=True,
        type=output_dir,
        metavar="DIR",
        help="output folder (clips/, long/, manifest.jsonl, metadata.json)",
    )
    parser.add_argument(
        "--n",
        type=positive_int,
        default=2000,
        help="short clips (one question each, temporal ones 3), spread over the 7 skills",
    )
    add_seed(parser)
    parser.add_argument(
        "--n-long", type=nonnegative_int, default=None, help="long scenes, 3 questions each (default n // 50)"
    )
    parser.add_argument("--long-min", type=positive_float, default=30.0, help="shortest long scene, seconds")
    parser.add_argument("--long-max", type=positive_float, default=300.0, help="longest long scene, seconds")
    parser.add_argument(
        "--speech",
        choices=("auto", "espeak", "formant"),
        default="auto",
        help="speech engine: espeak-ng if installed (auto), or formant-synthesised syllables",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    if args.long_min > args.long_max:
        raise ConfigError(f"--long-min {args.long_min:g} is longer than --long-max {args.long_max:g}")
    from af2.data.synth.generate import generate
    from af2.data.synth.speech import find_espeak

    if args.speech == "espeak" and find_espeak() is None:
        raise ConfigError(
            "--speech espeak: espeak-ng is not installed (apt-get install espeak-ng, or --speech formant)"
        )

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    meta = generate(
        args.output,
        args.n,
        seed=args.seed,
        n_long=args.n_long,
        long_seconds=(args.long_min, args.long_max),
        speech=args.speech,
        progress=not args.quiet,
    )
    print(json.dumps(meta, indent=2))
    if "speech_note" in meta:
        print(f"NOTE: {meta['speech_note']}")
    return 0
