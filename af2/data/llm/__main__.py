"""``python -m af2.data.llm {paraphrase,negatives,qa,longqa} --in IN.jsonl --out OUT.jsonl``.

Beside OUT the job keeps ``OUT.rejects.jsonl`` (records it gave up on, with reasons),
``OUT.cache.sqlite`` (every reply; ``--cache`` moves it, ``--cache off`` disables it) and
``OUT.report.json`` (records, requests, tokens, cost). Exit status: 0 when every record has a
result, 1 when some are left pending (rerun to resume), 2 on a usage or fatal server error.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from af2.data.llm.jobs import Job, run_for_cli
from af2.data.llm.longqa import LongQA
from af2.data.llm.negatives import Negatives
from af2.data.llm.paraphrase import Paraphrase
from af2.data.llm.qa import QA
from af2.errors import InputError
from af2.llm import LLMClient, LLMConfig, ResponseCache
from af2.llm.logsetup import configure_cli_logging
from af2.llm.redact import install, redact

PIPELINES = {cls.name: cls for cls in (Paraphrase, Negatives, QA, LongQA)}
log = logging.getLogger("af2.data.llm")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m af2.data.llm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, cls in PIPELINES.items():
        sub = commands.add_parser(name, help=cls.help, description=sys.modules[cls.__module__].__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("--in", dest="inp", required=True, type=Path, help="input JSONL")
        sub.add_argument("--out", required=True, type=Path, help="output JSONL (appended to; resumable)")
        sub.add_argument("--rejects", type=Path, help="rejected records (default OUT.rejects.jsonl)")
        sub.add_argument("--report", type=Path, help="the JSON report (default OUT.report.json)")
        sub.add_argument("--limit", type=int, help="process at most this many pending records")
        sub.add_argument("--template-version", type=int, help=f"version of {name}.vN.txt (default newest)")
        sub.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                         help="progress bar (default: on a terminal)")
        sub.add_argument("--log-level", default="INFO")
        cls.add_arguments(sub)
        LLMConfig.add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_cli_logging(args.log_level)
    try:
        return run(args)
    except InputError as err:
        log.error("%s", err)
        return 2


def run(args: argparse.Namespace) -> int:
    config = LLMConfig.from_args(args)
    install(config.api_key)
    if not config.model:
        log.error("no model: pass --model or set AF2_LLM_MODEL")
        return 2
    out: Path = args.out
    cache = None if config.cache == "off" else ResponseCache(config.cache or f"{out}.cache.sqlite")
    client = LLMClient(config, cache=cache)
    job = Job(PIPELINES[args.command](args, client), args.inp, out, rejects=args.rejects,
              limit=args.limit, progress=args.progress)
    code, report = run_for_cli(job, report_path=args.report or Path(f"{out}.report.json"), api_key=config.api_key,
                               cache=cache)
    records = report["records"]
    print(redact(f"{args.command}: {records['ok']} ok, {records['rejected']} rejected, {records['failed']} "
                 f"failed, {records['already_done']} done before, {records['not_started']} not started; "
                 f"{records['lines_written']} lines written to {out}\n{client.report().summary()}",
                 config.api_key), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
