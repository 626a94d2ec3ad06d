"""``python -m af2.eval.benchmarks``: evaluate a model on a public benchmark, print the table.

    python -m af2.eval.benchmarks --benchmark mmau --data MMAU/ --model MODEL_DIR --output OUT
    python -m af2.eval.benchmarks --benchmark clotho --data clotho/ --predictions P.jsonl \\
        --baseline OTHER.jsonl --output OUT

Writes ``OUT/results.md`` and ``OUT/results.json`` (and ``OUT/predictions.jsonl`` when a model
runs; a rerun skips the ids already answered). Exit status: 0 complete, 1 partial (items
without a prediction, or judgements pending: rerun to continue), 2 bad input.
"""

from __future__ import annotations

import argparse
import logging
import sys

from af2.cli.runner import Parser
from af2.eval.benchmarks.items import BenchmarkInputError
from af2.eval.benchmarks.longaudio import JudgeSettings
from af2.eval.benchmarks.registry import BENCHMARKS
from af2.eval.benchmarks.run import run_benchmark
from af2.llm import LLMConfig

FILES = "; ".join(f"{b.name}: {b.files}" for b in BENCHMARKS.values())


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="af2 eval", description=__doc__)
    p.add_argument("--benchmark", required=True, help=f"one of: {', '.join(BENCHMARKS)}")
    p.add_argument("--data", required=True, help=f"the benchmark file, or the folder holding it ({FILES})")
    p.add_argument("--model", help="a saved AF2 model folder (AudioFlamingo2.save_pretrained)")
    p.add_argument("--output", required=True, help="folder for predictions and the results table")
    p.add_argument("--predictions", help="score this predictions JSONL ({id, prediction}) instead of running --model")
    p.add_argument("--baseline", help="another model's predictions JSONL, scored side by side")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--max-windows", type=int, default=None, help="10-s windows per audio (default: the model's)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    judge = p.add_argument_group("LLM judge (longaudiobench); other settings from AF2_LLM_* variables")
    judge.add_argument("--judge-model", help="judge model name [AF2_LLM_MODEL]")
    judge.add_argument("--judge-base-url", help="OpenAI-compatible endpoint [AF2_LLM_BASE_URL]")
    judge.add_argument("--judge-concurrency", type=int, help="judge requests in flight [AF2_LLM_CONCURRENCY]")
    judge.add_argument("--judge-template-version", type=int, help="version of judge.vN.txt (default newest)")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="inference progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error (2), already printed
        return int(stop.code or 0)
    if not isinstance(logging.getLevelName(args.log_level.upper()), int):
        print(f"af2 eval: error: --log-level: unknown level {args.log_level!r}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    for flag in ("batch_size", "max_new_tokens"):
        if getattr(args, flag) < 1:
            print(
                f"af2 eval: error: --{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}",
                file=sys.stderr,
            )
            return 2
    config = LLMConfig.from_env(
        model=args.judge_model, base_url=args.judge_base_url, concurrency=args.judge_concurrency
    )
    try:
        result = run_benchmark(
            args.benchmark,
            args.data,
            args.model,
            args.output,
            predictions=args.predictions,
            baseline=args.baseline,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            max_windows=args.max_windows,
            device=args.device,
            judge=JudgeSettings(config, args.judge_template_version),
            progress=args.progress,
        )
    except BenchmarkInputError as err:
        print(f"af2 eval: error: {err}", file=sys.stderr)
        return 2
    print(result.markdown, end="")
    if not result.complete:
        print("af2 eval: partial: some items have no prediction or judgement yet; rerun to continue", file=sys.stderr)
    return 0 if result.complete else 1


if __name__ == "__main__":
    sys.exit(main())
