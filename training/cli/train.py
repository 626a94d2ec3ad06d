"""``af2 train --config STAGE.yaml [--set key=value ...] [--seed N] [--resume]``: one training stage.

Runs one curriculum stage (clap, pretrain, sft or long; ``training/configs/*.yaml``) with
DeepSpeed. Under ``torchrun`` or ``deepspeed`` each rank runs this same command. ``--seed N``
sets ``model.seed``, ``data.seed`` and ``train.seed``. ``--resume`` continues from the newest
good checkpoint in ``output.dir``, skipping damaged ones with a warning; none usable (or a
checkpoint holding pickled code) is exit status 2, the message naming the file
(docs/checkpoints.md). Needs ``pip install 'af2[train]'``.
"""

from __future__ import annotations

import argparse
import logging

from af2.cli.args import add_config, add_seed
from af2.errors import ConfigError, InputError

HELP = "run one training stage (DeepSpeed)"


def configure(parser: argparse.ArgumentParser, *, legacy: bool = False, what: str = "stage") -> None:
    add_config(parser, help=f"the {what} config (YAML)")
    add_seed(parser, default=None, help="set model.seed, data.seed and train.seed (default: the config's)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest good checkpoint (damaged ones are skipped with a warning)",
    )
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)


def overrides(args: argparse.Namespace) -> dict:
    """The ``--set`` items and ``--seed`` as one nested dict; ConfigError on a bad item."""
    import training.config as tc

    try:
        extra = tc.parse_overrides(args.overrides)
    except (tc.ConfigError, ValueError) as err:  # ValueError: a YAML value that does not parse
        raise ConfigError(f"--set: {err}") from None
    if args.seed is not None:
        extra = tc.merge(extra, {part: {"seed": args.seed} for part in ("model", "data", "train")})
    return extra


def config_errors():
    """The exceptions that mean a bad config file or value (exit status 2)."""
    import yaml

    import training.config as tc

    return tc.ConfigError, yaml.YAMLError, UnicodeDecodeError


def config_error(path, err: Exception) -> ConfigError:
    """One line for a bad config file: YAML's own message spans several lines."""
    mark = getattr(err, "problem_mark", None)
    if mark is not None:
        return ConfigError(
            f"--config {path}: not valid YAML: {getattr(err, 'problem', None) or 'syntax error'} "
            f"at line {mark.line + 1}, column {mark.column + 1}"
        )
    return ConfigError(f"--config {path}: {' '.join(str(err).split())}")


def run_stage(cfg: dict, *, resume: bool) -> dict:
    """training.train.run_stage; a checkpoint (or ``init_from``) that cannot be used, damaged or
    unsafe, is an InputError (exit status 2): nothing to retry until a person looks."""
    from training.safe_load import CheckpointError
    from training.train import run_stage as train_stage

    try:
        return train_stage(cfg, resume=resume)
    except CheckpointError as err:
        raise InputError(str(err)) from None


def main(args: argparse.Namespace) -> int:
    from training.config import load_config

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config, overrides(args))
    except config_errors() as err:
        raise config_error(args.config, err) from None
    run_stage(cfg, resume=args.resume)
    return 0
