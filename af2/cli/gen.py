"""``af2 gen {paraphrase,negatives,qa,longqa} --input IN.jsonl --output OUT.jsonl``: LLM data jobs.

Beside OUT the job keeps ``OUT.rejects.jsonl`` (records it gave up on, with reasons),
``OUT.cache.sqlite`` (every reply; ``--cache`` moves it, ``--cache off`` disables it) and
``OUT.report.json`` (records, requests, tokens, cost). Rerun the same command to resume:
finished records are skipped. The server comes from ``--base-url`` / ``AF2_LLM_BASE_URL``, the
model from ``--model`` / ``AF2_LLM_MODEL``, the key from ``AF2_LLM_API_KEY``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from af2.cli.args import add_log_level, flags, input_file, output_file, positive_int
from af2.errors import ConfigError

HELP = "LLM data jobs: paraphrase, negatives, qa, longqa"
log = logging.getLogger("af2.data.llm")


def pipelines() -> dict:
    from af2.data.llm.longqa import LongQA
    from af2.data.llm.negatives import Negatives
    from af2.data.llm.paraphrase import Paraphrase
    from af2.data.llm.qa import QA

    return {cls.name: cls for cls in (Paraphrase, Negatives, QA, LongQA)}


def add_job_arguments(parser: argparse.ArgumentParser, *, what: str = "records") -> None:
    """The flags every resumable LLM job has (``gen`` and ``judge``), after --input/--output."""
    parser.add_argument("--rejects", type=output_file, help=f"rejected {what} (default OUT.rejects.jsonl)")
    parser.add_argument("--report", type=output_file, help="the JSON report (default OUT.report.json)")
    parser.add_argument("--limit", type=positive_int, help=f"process at most this many pending {what}")
    parser.add_argument("--template-version", type=positive_int, help="version of the template (default newest)")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: on a terminal)"
    )


def configure(parser: argparse.ArgumentParser, *, legacy: bool = False) -> None:
    from af2.llm.config import LLMConfig

    jobs = parser.add_subparsers(dest="job", required=True, metavar="JOB")
    for name, cls in pipelines().items():
        sub = jobs.add_parser(name, help=cls.help, description=sys.modules[cls.__module__].__doc__)
        sub.add_argument(
            *flags("--input", "--in", legacy=legacy),
            dest="inp",
            required=True,
            type=input_file,
            metavar="IN",
            help="input JSONL",
        )
        sub.add_argument(
            *flags("--output", "--out", legacy=legacy),
            dest="out",
            required=True,
            type=output_file,
            metavar="OUT",
            help="output JSONL (appended to; resumable)",
        )
        add_job_arguments(sub)
        add_log_level(sub)
        cls.add_arguments(sub)
        LLMConfig.add_arguments(sub)


def llm_client(args: argparse.Namespace, out: Path, *, default_temperature: float | None = None):
    """(config, client, cache) from the flags and AF2_LLM_* variables; ConfigError without a model.
    The cache is ``OUT.cache.sqlite`` unless ``--cache`` says otherwise."""
    from af2.llm import LLMClient, LLMConfig, ResponseCache
    from af2.llm.redact import install

    config = LLMConfig.from_args(args)
    install(config.api_key)
    if config.temperature is None and default_temperature is not None:
        config = config.replace(temperature=default_temperature)
    if not config.model:
        raise ConfigError("no model: pass --model or set AF2_LLM_MODEL")
    cache = None if config.cache == "off" else ResponseCache(config.cache or f"{out}.cache.sqlite")
    return config, LLMClient(config, cache=cache), cache


def main(args: argparse.Namespace) -> int:
    from af2.llm.jobs import Job, run_for_cli
    from af2.llm.logsetup import configure_cli_logging
    from af2.llm.redact import redact

    configure_cli_logging(args.log_level)
    out: Path = args.out
    config, client, cache = llm_client(args, out)
    job = Job(
        pipelines()[args.job](args, client),
        args.inp,
        out,
        rejects=args.rejects,
        limit=args.limit,
        progress=args.progress,
    )
    code, report = run_for_cli(
        job, report_path=args.report or Path(f"{out}.report.json"), api_key=config.api_key, cache=cache
    )
    records = report["records"]
    print(
        redact(
            f"{args.job}: {records['ok']} ok, {records['rejected']} rejected, {records['failed']} "
            f"failed, {records['already_done']} done before, {records['not_started']} not started; "
            f"{records['lines_written']} lines written to {out}\n{client.report().summary()}",
            config.api_key,
        ),
        file=sys.stderr,
    )
    return code
