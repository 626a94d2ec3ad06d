"""The ``af2`` command line: ``af2 VERB [flags]`` (also ``python -m af2 VERB``).

One module per verb (``af2/cli/<verb>.py``; the trainer's verbs ``train``, ``curriculum`` and
``demo`` are ``training/cli/<verb>.py``, found through the ``af2.cli`` entry-point group so
that af2 never imports the trainer), each with ``HELP`` (one line), ``configure(parser,
legacy=False)`` (its flags) and ``main(args) -> int`` (the work; heavy imports inside, so that
``af2 --help`` and the pure-Python verbs never load torch or the compiled core); or, for a verb
that keeps its own parser (``eval``), ``run_argv(argv) -> int``. Shared flag
types are in :mod:`af2.cli.args`; parsing, errors and exit statuses in :mod:`af2.cli.runner`.
The old ``python -m`` entry points call :func:`legacy_main`, which accepts their old flag
names (``--in``/``--out``, ``--pred``/``--ref``) as aliases.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

from af2.cli.runner import EPILOG, EXIT_CODES, Parser, fail, run

__all__ = ["VERBS", "EXIT_CODES", "main", "dispatch", "legacy_main", "verb_parser"]

#: verb -> one-line help (kept here so that ``af2 --help`` imports no verb module).
VERBS = {
    "info": "print how af2 was built (compiled core, torch, CUDA, CPU kernels)",
    "synth": "write a synthetic AudioSkills set (clips, long scenes, manifest)",
    "gen": "LLM data jobs: paraphrase, negatives, qa, longqa (resumable)",
    "train": "run one training stage (DeepSpeed)",
    "curriculum": "run the training stages of a curriculum in order",
    "demo": "the whole curriculum on synthetic data, small, with a report",
    "infer": "answer prompts about audio with a saved AF2 model",
    "serve": "an OpenAI-compatible chat server for a saved AF2 model (text + audio, streaming)",
    "score": "accuracy per skill: multiple choice, exact and normalised match",
    "eval": "a model or predictions on a public benchmark (MMAU, ClothoAQA, AudioCaps, Clotho, ...)",
    "judge": "score predictions 1-10 with an LLM judge (resumable)",
    "convert-official": "the public AF2 release -> a from_pretrained directory (model, processor, front end)",
}

#: The verbs another package provides through the ``af2.cli`` entry-point group (pyproject.toml).
PLUGIN_VERBS = ("train", "curriculum", "demo")

DESCRIPTION = """af2: Audio Flamingo 2 with a fused C++/CUDA core.

Shared flags, where a verb has them: --input / --output (files or folders), --config FILE,
--set KEY=VALUE (repeatable), --seed N, --device cpu|cuda[:N]. Run `af2 VERB --help` for a
verb's flags. Bad input (a missing or unreadable file, a directory in place of a file, an
output path in a missing folder, an unknown flag) gets one line naming the argument and exit
status 2, with nothing written."""


def verb_module(verb: str):
    """The module of a verb: an ``af2.cli`` entry point of an installed package (the trainer's
    verbs), else ``af2.cli.<verb>``. A trainer verb of a checkout that was never installed (no
    entry points) is an ImportError that says so."""
    from importlib.metadata import entry_points

    for point in entry_points(group="af2.cli"):
        if point.name == verb:
            return importlib.import_module(point.value)
    if verb in PLUGIN_VERBS:
        err = ImportError(
            f"af2 {verb} comes with the trainer (training/), registered when af2 is installed: "
            "pip install --no-build-isolation -e '.[train]'"
        )
        err.extra = "train"
        raise err
    return importlib.import_module(f"af2.cli.{verb.replace('-', '_')}")


def verb_parser(verb: str, prog: str | None = None, *, legacy: bool = False) -> tuple[Parser, object]:
    """The parser of one verb and its module."""
    module = verb_module(verb)
    parser = Parser(prog=prog or f"af2 {verb}", description=module.__doc__)
    module.configure(parser, legacy=legacy)
    return parser, module


def _verb_list_parser(prog: str, verbs: dict[str, str], description: str, version: str | None) -> Parser:
    """A parser that only lists ``verbs`` (for --help, --version and an unknown verb)."""
    parser = Parser(
        prog=prog, description=description, usage=f"{prog} [-h]{' [--version]' if version else ''} VERB ..."
    )
    if version:
        parser.add_argument("--version", action="version", version=version)
    commands = parser.add_subparsers(dest="verb", required=True, metavar="VERB", title="verbs")
    for verb, text in verbs.items():
        commands.add_parser(verb, help=text, add_help=False)
    return parser


def dispatch(
    argv: Sequence[str] | None,
    *,
    prog: str,
    verbs: dict[str, str],
    description: str,
    legacy: bool = False,
    version: str | None = None,
) -> int:
    """Run ``PROG VERB [flags]`` for one of ``verbs``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in verbs:  # --help, --version, no verb or an unknown one
        return run(_verb_list_parser(prog, verbs, description, version), argv, lambda args: 0)
    return _run_verb(argv[0], f"{prog} {argv[0]}", argv[1:], legacy=legacy)


def _run_verb(verb: str, prog: str, argv: list[str], *, legacy: bool) -> int:
    try:
        module = verb_module(verb)
        if hasattr(module, "run_argv"):  # a verb with its own parser
            return module.run_argv(argv)
        parser, module = verb_parser(verb, prog, legacy=legacy)
        return run(parser, argv, module.main)
    except ImportError as err:
        if getattr(err, "extra", None) is None:  # not af2's "install the extra" error: a bug
            raise
        return fail(prog, str(err))


def main(argv: Sequence[str] | None = None) -> int:
    """``af2 VERB ...``; returns the exit status (see :data:`EXIT_CODES`)."""
    from af2._version import __version__

    return dispatch(argv, prog="af2", verbs=VERBS, description=DESCRIPTION, version=f"af2 {__version__}")


def legacy_main(verb: str, prog: str, argv: Sequence[str] | None = None) -> int:
    """An old entry point (``python -m af2.eval``, ``python -m training.train``, ...): ``verb``'s
    flags plus the old names, under the old program name."""
    return _run_verb(verb, prog, list(sys.argv[1:] if argv is None else argv), legacy=True)


__doc__ += "\n" + EPILOG
