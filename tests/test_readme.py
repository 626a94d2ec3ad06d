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


def test_documented_curriculum_paths_are_the_ones_it_writes():
    """Every ``runs/curriculum/<k>-<stage>`` path in the README and docs/ is a stage folder that
    training/configs/curriculum.yaml really writes."""
    import yaml

    root = README.parent
    configs = root / "training" / "configs"
    spec = yaml.safe_load((configs / "curriculum.yaml").read_text())
    stages = [yaml.safe_load((configs / s["config"]).read_text())["stage"] for s in spec["stages"]]
    written = {
        f"{spec['output_dir']}/{k}-{stage}" for k, stage in enumerate(stages)
    }  # as training.curriculum names them
    texts = [README, *sorted((root / "docs").glob("*.md"))]
    cited = {(p.name, m) for p in texts for m in re.findall(r"runs/curriculum/\d+-\w+", p.read_text())}
    assert cited, "no curriculum stage path is documented"
    assert {(name, path) for name, path in cited if path not in written} == set()
