"""``af2 --help`` and ``af2 VERB --help``: every verb listed, the exit statuses documented, and
an unknown verb or flag is one line and exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from af2.cli import EXIT_CODES, VERBS
from tests.cli.conftest import bad_input

ROOT = Path(__file__).resolve().parents[2]


def test_top_level_help_lists_every_verb_and_the_exit_statuses(af2):
    result = af2("--help")
    assert result.code == 0 and not result.err
    for verb, text in VERBS.items():
        assert verb in result.out and text.split()[0] in result.out
    assert "exit status:" in result.out
    for code in EXIT_CODES:
        assert f"  {code}  " in result.out
    assert "an unreachable server" in result.out and "rerun continues" in result.out


@pytest.mark.parametrize("verb", list(VERBS))
def test_every_verb_has_help_with_the_exit_statuses(af2, verb):
    result = af2(verb, "--help")
    assert result.code == 0 and not result.err
    assert result.out.startswith(f"usage: af2 {verb} ") and "exit status:" in result.out


@pytest.mark.parametrize("job", ["paraphrase", "negatives", "qa", "longqa"])
def test_every_gen_job_has_help(af2, job):
    result = af2("gen", job, "--help")
    assert result.code == 0 and result.out.startswith(f"usage: af2 gen {job} ")
    assert "--input IN" in result.out and "--output OUT" in result.out and "exit status:" in result.out


def required(verb: str, tmp_path) -> list[str]:
    """The smallest valid command line of ``verb`` (files under ``tmp_path``)."""
    inp = tmp_path / "in.jsonl"
    inp.write_text("")
    (tmp_path / "model").mkdir(exist_ok=True)
    return {
        "info": [],
        "synth": ["--output", tmp_path / "set"],
        "gen": ["paraphrase", "--input", inp, "--output", tmp_path / "out.jsonl"],
        "train": ["--config", inp],
        "curriculum": ["--config", inp],
        "demo": [],
        "infer": ["--model", tmp_path / "model"],
        "serve": ["--model", tmp_path / "model"],
        "score": ["--input", inp, "--reference", inp],
        "eval": ["--benchmark", "mmau", "--data", inp, "--output", tmp_path / "o"],
        "judge": ["--input", inp, "--reference", inp, "--output", tmp_path / "out.jsonl"],
        "convert-official": ["--input", inp, "--output", tmp_path / "converted"],
    }[verb]


@pytest.mark.parametrize("verb", list(VERBS))
def test_an_unknown_flag_is_one_line_and_status_2(af2, verb, tmp_path):
    argv = required(verb, tmp_path)
    before = sorted(tmp_path.rglob("*"))
    bad_input(af2(verb, *argv, "--no-such-flag", "1"), "unrecognized arguments: --no-such-flag")
    assert sorted(tmp_path.rglob("*")) == before


def test_no_verb_or_an_unknown_verb_is_status_2(af2):
    bad_input(af2(), "VERB")
    bad_input(af2("trian"), "trian", "invalid choice")
    bad_input(af2("gen"), "JOB")
    bad_input(af2("gen", "summarise"), "summarise")


def test_version(af2):
    from af2._version import __version__

    result = af2("--version")
    assert result.code == 0 and result.out.strip() == f"af2 {__version__}"


def test_the_console_script_and_python_m_af2_are_the_same_main():
    import af2.__main__
    import af2.cli

    assert af2.__main__.main is af2.cli.main
    run = subprocess.run([sys.executable, "-m", "af2", "bogus"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "invalid choice: 'bogus'" in run.stderr


PURE_PYTHON = [
    "--help",
    "synth --help",
    "gen paraphrase --help",
    "score --help",
    "judge --help",
    "train --help",
    "curriculum --help",
    "demo --help",
    "infer --help",
    "serve --help",
]


def test_help_loads_neither_torch_nor_the_compiled_core():
    probe = "import sys, af2; print('af2._C' in sys.modules or 'torch' in sys.modules)"
    loads = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    if loads != "False":
        pytest.skip("`import af2` itself loads the compiled core in this checkout")
    code = (
        "import sys, contextlib, io\nfrom af2.cli import main\n"
        f"for argv in {PURE_PYTHON!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        assert main(argv.split()) == 0, argv\n"
        "print(sorted(m for m in ('torch', 'af2._C') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "[]", run.stdout + run.stderr


def test_a_missing_extra_is_one_line_and_status_2(af2, monkeypatch):
    import af2.cli.gen as gen

    class MissingExtra(ModuleNotFoundError):
        extra = "llm"

    def no_openai():
        raise MissingExtra("af2.llm needs openai, which is not installed: pip install 'af2[llm]'")

    monkeypatch.setattr(gen, "pipelines", no_openai)
    bad_input(af2("gen", "paraphrase", "--help"), "af2 gen: error:", "pip install 'af2[llm]'")

    def broken():
        raise ImportError("a bug, not a missing extra")

    monkeypatch.setattr(gen, "pipelines", broken)
    with pytest.raises(ImportError, match="a bug"):
        af2("gen", "paraphrase", "--help")


def test_input_errors_of_a_command_are_one_line_other_errors_keep_their_traceback(capsys):
    from af2.cli.runner import Parser, run
    from af2.errors import ConfigError, InputError, ServerUnreachable

    parser = Parser(prog="af2 x")
    for error in (InputError("--input a.jsonl: line 3 is not UTF-8"), ConfigError("bad"), ServerUnreachable("down")):
        assert run(parser, [], lambda args: (_ for _ in ()).throw(error)) == 2
        err = capsys.readouterr().err
        assert err == f"af2 x: error: {error}\n"
    assert run(parser, [], lambda args: (_ for _ in ()).throw(InputError("3 damaged:\n  a\n  b"))) == 2
    assert capsys.readouterr().err == "af2 x: error: 3 damaged:\n  a\n  b\n"  # details kept
    with pytest.raises(KeyError):
        run(parser, [], lambda args: {}["bug"])
    assert run(parser, [], lambda args: 1) == 1


def test_the_trainer_verbs_come_through_entry_points(af2, monkeypatch):
    """af2 never imports the trainer: its verbs are the ``af2.cli`` entry points of the install;
    a checkout with none registered says how to get them (status 2)."""
    from importlib import metadata

    import af2.cli as cli

    names = {p.name: p.value for p in metadata.entry_points(group="af2.cli")}
    assert names == {verb: f"training.cli.{verb}" for verb in cli.PLUGIN_VERBS}
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: [])
    result = af2("train", "--config", "x.yaml")
    assert result.code == 2 and "comes with the trainer" in result.err and "pip install" in result.err
