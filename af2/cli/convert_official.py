"""``af2 convert-official --input RELEASE --output DIR [--llm-path QWEN_DIR] [--preset NAME]``.

Turns the public AF2 release (a ``safe_ckpt/`` folder of shards + ``metadata.json``, one
``.safetensors`` file, or a training / AF-CLAP ``.pt`` read with ``weights_only=True``) into a
``from_pretrained`` directory holding the model, the processor and the official front end
(``audio_normalization="official"``, ``official_format=True``): af2.model.convert.convert_official.
The tokenizer is that of ``--llm-path`` (a local Qwen2.5 directory) with AF2's tokens added, or
the preset's own. Exit status 2 when the release names tensors no rule maps or no tokenizer can
be had; nothing is written then.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from af2.cli.args import input_dir, output_dir
from af2.errors import InputError

HELP = "the public AF2 release -> a from_pretrained directory (model, processor, official front end)"


def _release(value: str) -> Path:
    """A release folder or one checkpoint file."""
    path = Path(value)
    if path.is_dir():
        return input_dir(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file or directory: {value}")
    return path


def configure(parser: argparse.ArgumentParser, *, legacy: bool = False) -> None:
    parser.add_argument(
        "--input", required=True, type=_release, metavar="RELEASE", help="the release folder or checkpoint file"
    )
    parser.add_argument("--output", required=True, type=output_dir, metavar="DIR", help="the directory to write")
    parser.add_argument(
        "--llm-path", type=input_dir, metavar="DIR", help="a local Qwen2.5 directory (its tokenizer gets AF2's tokens)"
    )
    parser.add_argument("--preset", default="af2-3b", help="the model's sizes (default af2-3b, the release's)")
    parser.add_argument("--max-shard-size", default="5GB", help="largest safetensors shard (default 5GB)")


def main(args: argparse.Namespace) -> int:
    from af2.model.configuration_af2 import AudioFlamingo2Config
    from af2.model.convert import convert_official

    if args.output.exists() and any(args.output.iterdir()):
        raise InputError(f"--output {args.output}: the directory is not empty")
    try:
        config = AudioFlamingo2Config.preset(args.preset)
    except (KeyError, ValueError) as err:
        raise InputError(f"--preset {args.preset}: {err}") from None
    try:
        report = convert_official(
            args.input, args.output, config=config, llm_path=args.llm_path, max_shard_size=args.max_shard_size
        )
    except ValueError as err:  # no tokenizer, unmapped tensors, a checkpoint of another layout
        raise InputError(f"--input {args.input}: {err}") from None
    print(f"converted {len(report.loaded)} tensors from {args.input} into {args.output}")
    return 0
