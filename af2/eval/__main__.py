"""``python -m af2.eval {score,judge}``: metrics and the LLM judge from the command line.

``score --pred P.jsonl --ref MANIFEST.jsonl [--out REPORT.json]`` prints accuracy per skill
(multiple choice, exact and normalised match) and writes the full report with --out.

``judge --pred P.jsonl --ref MANIFEST.jsonl --out JUDGED.jsonl`` scores every prediction 1-10
with an LLM judge. Beside OUT it keeps ``OUT.rejects.jsonl`` (judgements rejected, with
reasons), ``OUT.cache.sqlite`` (every reply; --cache moves it, --cache off disables it) and
``OUT.report.json``. Rerun the same command to resume: done ids are skipped. The judge's
temperature is 0 unless set. Exit status: 0 when every prediction has a result, 1 when some
are left pending (rerun to resume), 2 on a usage, input or fatal server error.

Prediction files are JSONL with ``id`` and ``prediction``; references are af2 manifests.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from af2.data.llm.jobs import Job, run_for_cli
from af2.data.manifest import ManifestValidationError
from af2.errors import InputError
from af2.eval.inputs import load_predictions, load_references
from af2.eval.judge import Judge
from af2.eval.judge_summary import read_jsonl, summarize
from af2.eval.metrics import score
from af2.eval.report import judge_table, metrics_table
from af2.llm import LLMClient, LLMConfig, ResponseCache
from af2.llm.logsetup import configure_cli_logging
from af2.llm.redact import install, redact

log = logging.getLogger("af2.eval")


def run_score(args: argparse.Namespace) -> int:
    references, predictions = load_references(args.ref), load_predictions(args.pred)
    for problem in predictions.problems:
        log.warning("%s: %s (not used)", args.pred, problem)
    scores = score(references, predictions.by_id)
    print(metrics_table(scores))
    if scores.overall.missing:
        print(f"{scores.overall.missing} reference samples have no prediction (counted as wrong)")
    if scores.unmatched:
        print(f"{len(scores.unmatched)} predictions match no reference id (ignored)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = {"predictions": str(args.pred), "references": str(args.ref),
                  "prediction_problems": predictions.problems, **scores.to_dict()}
        args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", "utf-8")
    return 0


def run_judge(args: argparse.Namespace) -> int:
    config = LLMConfig.from_args(args)
    install(config.api_key)
    if config.temperature is None:
        config = config.replace(temperature=0.0)
    if not config.model:
        log.error("no model: pass --model or set AF2_LLM_MODEL")
        return 2
    references, predicted, out = load_references(args.ref), set(load_predictions(args.pred).by_id), args.out
    cache = None if config.cache == "off" else ResponseCache(config.cache or f"{out}.cache.sqlite")
    client = LLMClient(config, cache=cache)
    job = Job(Judge(args, client, references), args.pred, out, rejects=args.rejects,
              limit=args.limit, progress=args.progress)
    summary = None

    def judge_summary() -> dict:
        nonlocal summary
        summary = summarize(references, predicted, read_jsonl(out), read_jsonl(job.rejects))
        return {"references": str(args.ref), "summary": summary.to_dict()}

    code, _ = run_for_cli(job, report_path=args.report or Path(f"{out}.report.json"), api_key=config.api_key,
                          cache=cache, extra=judge_summary)
    print(judge_table(summary))
    s = summary.overall
    print(redact(f"judge: {s.scored} scored ({s.fallback} by the fallback parser), {s.rejected} rejected "
                 f"(see {job.rejects}), {s.pending} pending, {s.unpredicted} without a prediction; "
                 f"{len(summary.stray_rejects)} prediction lines match no reference\n"
                 f"{client.report().summary()}", config.api_key), file=sys.stderr)
    return code


def add_io_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", required=True, type=Path, help="predictions JSONL (id, prediction)")
    parser.add_argument("--ref", required=True, type=Path, help="reference af2 manifest JSONL")
    parser.add_argument("--log-level", default="INFO")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m af2.eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    scorer = commands.add_parser("score", help="accuracy per skill: multiple choice, exact, normalised")
    add_io_arguments(scorer)
    scorer.add_argument("--out", type=Path, help="write the full report (JSON) here")
    scorer.set_defaults(run=run_score)
    judge = commands.add_parser("judge", help=Judge.help, description=sys.modules[Judge.__module__].__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_io_arguments(judge)
    judge.add_argument("--out", required=True, type=Path, help="judged JSONL (appended to; resumable)")
    judge.add_argument("--rejects", type=Path, help="rejected judgements (default OUT.rejects.jsonl)")
    judge.add_argument("--report", type=Path, help="the JSON report (default OUT.report.json)")
    judge.add_argument("--limit", type=int, help="judge at most this many pending predictions")
    judge.add_argument("--template-version", type=int, help="version of judge.vN.txt (default newest)")
    judge.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress bar (default: on a terminal)")
    LLMConfig.add_arguments(judge)
    judge.set_defaults(run=run_judge)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_cli_logging(args.log_level)
    try:
        return args.run(args)
    except (InputError, ManifestValidationError) as err:
        log.error("%s", err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
