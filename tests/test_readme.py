"""The README's Python examples run as written."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, str(README), "exec"), {})


def test_ci_runs_the_readme_test_command():
    text = README.read_text()
    m = re.search(r"# 2\. install, then the whole test suite.*?\n(python .*)\n", text)
    assert m, "README lost its test command"
    ci = (README.parent / ".ci" / "run").read_text()
    assert m.group(1).strip() in ci
