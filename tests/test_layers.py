"""The layering of docs/design.md ("Layout and layering"): no import runs up a layer.

Every ``import`` and ``from ... import`` of a module, at any depth (lazy imports inside
functions count), is read with ``ast``; a part may import only the parts below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: part -> the af2 / training packages it must never import.
FORBIDDEN = {
    "af2/text": ("af2.data", "af2.audio", "af2.model", "af2.eval", "af2.llm", "af2.cli", "training"),
    "af2/audio": ("af2.data", "af2.text", "af2.model", "af2.eval", "af2.llm", "af2.cli", "training"),
    "af2/jsonl.py": ("af2.data", "af2.model", "af2.eval", "af2.llm", "af2.cli", "training"),
    "af2/llm": ("af2.data", "af2.model", "af2.eval", "af2.cli", "training"),
    "af2/model": ("af2.data", "af2.eval", "af2.llm", "af2.cli", "training"),
    "af2/data": ("af2.model", "af2.eval", "training"),
    "af2/serve": ("af2.data", "af2.eval", "af2.llm", "af2.cli", "training"),
    "af2": ("training",),  # the trainer's verbs reach the command line through an entry point
}


def imported_modules(path: Path) -> set[str]:
    """Absolute module names ``path`` imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _files(part: str) -> list[Path]:
    path = ROOT / part
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*.py") if p.name != "__main__.py")  # entry points sit on top


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_no_import_runs_up_a_layer(part):
    bad = [
        f"{p.relative_to(ROOT)} imports {name}"
        for p in _files(part)
        for name in sorted(imported_modules(p))
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[part])
    ]
    assert not bad, "\n".join(bad)


def test_the_checker_sees_lazy_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def load():\n    from af2.data.manifest import load_manifest\n    import training.config\n")
    assert {"af2.data.manifest", "training.config"} <= imported_modules(f)
