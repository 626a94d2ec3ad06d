"""``af2 infer --model DIR (--input MANIFEST --output PREDS | --audio FILE... --prompt TEXT)``.

Answers prompts about audio with a saved AF2 model (a folder written by
``AudioFlamingo2.save_pretrained``). With a manifest, each answer is appended to PREDS as a JSON
line (``id``, ``prediction``, ``prompt``, ``audio``); a rerun skips the ids already there, and
unreadable audio files are listed in ``PREDS.errors.jsonl`` (exit status 1). With ``--audio``,
each file's answer is printed as ``FILE<TAB>ANSWER``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from af2.cli.args import add_device, input_dir, input_file, output_file, positive_int
from af2.errors import ConfigError, InputError

HELP = "answer prompts about audio with a saved AF2 model"


def configure(parser: argparse.ArgumentParser, *, legacy: bool = False) -> None:
    parser.add_argument(
        "--model",
        required=True,
        type=input_dir,
        metavar="DIR",
        help="directory written by AudioFlamingo2.save_pretrained",
    )
    parser.add_argument("--audio", nargs="+", type=input_file, metavar="FILE", help="audio files (with --prompt)")
    parser.add_argument("--prompt", help="the question asked about every --audio file")
    parser.add_argument("--input", type=input_file, metavar="MANIFEST", help="a manifest (JSONL) of questions")
    parser.add_argument(
        "--output", type=output_file, metavar="PREDS", help="predictions JSONL (appended; reruns skip done ids)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=8, help="requests decoding at once (default 8)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=64, help="answer length limit (default 64)")
    parser.add_argument(
        "--max-windows", type=positive_int, default=None, help="10-s windows per audio (default: the model's)"
    )
    parser.add_argument(
        "--max-prompt-tokens",
        type=positive_int,
        default=None,
        help="longer prompts are recorded as errors, never run (default: the model's context minus --max-new-tokens)",
    )
    add_device(parser)


def check(args: argparse.Namespace) -> None:
    if bool(args.audio) == bool(args.input):
        raise ConfigError("infer needs either --audio FILES --prompt TEXT or --input MANIFEST --output PREDS")
    if args.audio and not args.prompt:
        raise ConfigError("--audio needs --prompt")
    if args.input and not args.output:
        raise ConfigError("--input needs --output")
    if args.output and args.input and args.output.resolve() == args.input.resolve():
        raise ConfigError("--output is the --input manifest; it would be overwritten")


def load(args: argparse.Namespace):
    import torch

    from af2.eval import infer

    device = args.device or infer.default_device()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available here")
    if not (args.model / "config.json").is_file():
        raise InputError(f"--model {args.model}: no config.json (not a folder written by save_pretrained)")
    return infer.load_model(str(args.model), device)


def main(args: argparse.Namespace) -> int:
    check(args)
    from af2.eval import infer

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    model = load(args)
    if args.audio:
        reqs = [infer.Request(str(i), a, args.prompt) for i, a in enumerate(args.audio)]
        out = infer.run(
            model,
            reqs,
            output=None,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            max_windows=args.max_windows,
            max_prompt_tokens=args.max_prompt_tokens,
            progress=False,
        )
        for i, a in enumerate(args.audio):
            print(f"{a}\t{out['answers'].get(str(i), '<unreadable: see the warning above>')}")
        return 0 if out["failed"] == 0 else 1
    reqs, bad_lines = infer.requests_from_manifest(args.input)
    for msg in bad_lines:
        print(f"skipping bad manifest line {msg}", file=sys.stderr)
    out = infer.run(
        model,
        reqs,
        output=args.output,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        max_windows=args.max_windows,
        max_prompt_tokens=args.max_prompt_tokens,
    )
    print(
        f"answered {out['answered']}, already done {out['skipped_done']}, unreadable {out['failed']}, "
        f"bad manifest lines {len(bad_lines)}",
        file=sys.stderr,
    )
    return 1 if out["failed"] or bad_lines else 0
