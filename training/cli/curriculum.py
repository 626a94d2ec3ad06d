"""``af2 curriculum --config CURRICULUM.yaml [--set key=value ...] [--seed N] [--resume]``.

Runs the stages of a curriculum in order in one process (group): stage ``k`` writes
``<output_dir>/<k>-<stage>/`` and starts from stage ``k-1``'s exported weights. Every stage's
config is validated before the first one starts; ``--set`` and ``--seed`` apply to every stage.
``--resume`` skips finished stages and resumes the unfinished one from its newest checkpoint.
Needs ``pip install 'af2[train]'``.
"""

from __future__ import annotations

import argparse
import logging

from af2.errors import InputError
from training.cli import train

HELP = "run the training stages of a curriculum in order"


def configure(parser: argparse.ArgumentParser, *, legacy: bool = False) -> None:
    train.configure(parser, legacy=legacy, what="curriculum")


def main(args: argparse.Namespace) -> int:
    from training.curriculum import plan, run
    from training.safe_load import CheckpointError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        stages = plan(args.config, train.overrides(args))
    except train.config_errors() as err:
        raise train.config_error(args.config, err) from None
    try:
        run(stages, resume=args.resume)
    except CheckpointError as err:  # as af2 train: exit status 2, nothing to retry until a person looks
        raise InputError(str(err)) from None
    return 0
