"""``af2 demo [--output runs/demo] [--quick] [--seed 0]``: the whole AF2 curriculum, small.

Synthetic AudioSkills data, a tiny AF2 evaluated untrained, trained through the four stages
(clap, pretrain, sft, long) and evaluated again, and a report in ``OUT/report/``
(``report.md``, ``report.json``, loss plots). ``--quick`` is a seconds-long smoke run (the
plumbing, not learning). See ``training.demo`` for the details. Needs ``pip install 'af2[train]'``.
"""

from __future__ import annotations

import argparse

from af2.cli.args import add_seed, flags, nonnegative_int, output_dir, positive_float

HELP = "the whole curriculum on synthetic data, small, with a report"


def configure(parser: argparse.ArgumentParser, *, legacy: bool = False) -> None:
    parser.add_argument(
        *flags("--output", "--out", legacy=legacy),
        dest="output",
        default="runs/demo",
        type=output_dir,
        metavar="DIR",
        help="output folder (data/, runs/, report/; default runs/demo)",
    )
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run (plumbing, not learning)")
    add_seed(parser, help="training data and model seed (held-out data: seed + 1)")
    parser.add_argument("--steps-scale", type=positive_float, default=1.0, help="multiply every stage's step count")
    parser.add_argument("--workers", type=nonnegative_int, default=1, help="data-loader workers per stage")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the stages an earlier run in the output folder finished and resume the unfinished one",
    )


def main(args: argparse.Namespace) -> int:
    from training.demo import run

    return run(args)
