"""``af2 judge --input PREDS.jsonl --reference MANIFEST.jsonl --output JUDGED.jsonl``.

Scores every prediction 1-10 with an LLM judge. Beside OUT it keeps ``OUT.rejects.jsonl``
(judgements rejected, with reasons), ``OUT.cache.sqlite`` (every reply; --cache moves it,
--cache off disables it) and ``OUT.report.json``. Rerun the same command to resume: done ids
are skipped. The judge's temperature is 0 unless set. Predictions are JSONL with ``id`` and
``prediction``; references are an af2 manifest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from af2.cli.args import flags, output_file
from af2.cli.gen import add_job_arguments, llm_client
from af2.cli.score import add_inputs, load_references

HELP = "score predictions 1-10 with an LLM judge (resumable)"


def configure(parser: argparse.ArgumentParser, *, legacy: bool = False) -> None:
    from af2.llm.config import LLMConfig

    add_inputs(parser, legacy=legacy)
    parser.add_argument(
        *flags("--output", "--out", legacy=legacy),
        dest="out",
        required=True,
        type=output_file,
        metavar="OUT",
        help="judged JSONL (appended to; resumable)",
    )
    add_job_arguments(parser, what="predictions")
    LLMConfig.add_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from af2.eval.inputs import load_predictions
    from af2.eval.judge import Judge
    from af2.eval.judge_summary import read_jsonl, summarize
    from af2.eval.report import judge_table
    from af2.llm.jobs import Job, run_for_cli
    from af2.llm.logsetup import configure_cli_logging
    from af2.llm.redact import redact

    configure_cli_logging(args.log_level)
    references, predicted, out = load_references(args.ref), set(load_predictions(args.pred).by_id), args.out
    config, client, cache = llm_client(args, out, default_temperature=0.0)
    job = Job(
        Judge(args, client, references), args.pred, out, rejects=args.rejects, limit=args.limit, progress=args.progress
    )
    summary = None

    def judge_summary() -> dict:
        nonlocal summary
        summary = summarize(references, predicted, read_jsonl(out), read_jsonl(job.rejects))
        return {"references": str(args.ref), "summary": summary.to_dict()}

    code, _ = run_for_cli(
        job,
        report_path=args.report or Path(f"{out}.report.json"),
        api_key=config.api_key,
        cache=cache,
        extra=judge_summary,
    )
    print(judge_table(summary))
    s = summary.overall
    print(
        redact(
            f"judge: {s.scored} scored ({s.fallback} by the fallback parser), {s.rejected} rejected "
            f"(see {job.rejects}), {s.pending} pending, {s.unpredicted} without a prediction; "
            f"{len(summary.stray_rejects)} prediction lines match no reference\n"
            f"{client.report().summary()}",
            config.api_key,
        ),
        file=sys.stderr,
    )
    return code
