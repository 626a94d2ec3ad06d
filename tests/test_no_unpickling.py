"""Nothing in af2/, training/ or benchmarks/ unpickles: every ``torch.load`` passes a literal
``weights_only=True``; no ``pickle``/``dill``/``cloudpickle``/``joblib``/``shelve``/``marshal``
loader, ``np.load(allow_pickle=True)``, ``pandas.read_pickle``, ``torch.jit.load``, or
``yaml.load``/``yaml.unsafe_load`` (``yaml.safe_load`` is the YAML reader)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("af2", "training", "benchmarks")
PICKLERS = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
LOADERS = {"load", "loads", "Unpickler"}


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted name it was imported as (``import torch as th``: th -> torch;
    ``from torch import load``: load -> torch.load)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(func: ast.AST, aliases: dict[str, str]) -> str:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        return ""
    return ".".join([aliases.get(func.id, func.id), *reversed(parts)])


def _is_true(kw: dict, name: str) -> bool:
    return isinstance(kw.get(name), ast.Constant) and kw[name].value is True


def violations(source: str, where: str) -> tuple[list[str], int]:
    """(the unsafe loads of ``source``, the number of weights-only ``torch.load`` calls)."""
    tree = ast.parse(source)
    aliases = _aliases(tree)
    found, safe_loads = [], 0
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for m in modules:
                if m.split(".")[0] in PICKLERS - {"pickle"}:
                    found.append(f"{where}:{node.lineno}: imports {m}")
            if isinstance(node, ast.ImportFrom) and node.module in PICKLERS:
                for a in node.names:
                    if a.name in LOADERS:
                        found.append(f"{where}:{node.lineno}: imports {node.module}.{a.name}")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func, aliases)
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        at = f"{where}:{node.lineno}: {ast.unparse(node)[:120]}"
        head, _, last = name.rpartition(".")
        if name in ("torch.load", "torch.serialization.load"):
            if _is_true(kw, "weights_only"):
                safe_loads += 1
            else:
                found.append(f"{at} (torch.load without a literal weights_only=True)")
        elif head.split(".")[0] in PICKLERS and last in LOADERS:
            found.append(f"{at} (unpickles)")
        elif (
            name in ("numpy.load", "numpy.lib.npyio.load")
            and not (isinstance(kw.get("allow_pickle"), ast.Constant) and kw["allow_pickle"].value is False)
            and "allow_pickle" in kw
        ):
            found.append(f"{at} (np.load with allow_pickle not False)")
        elif name in ("pandas.read_pickle", "torch.jit.load", "yaml.load", "yaml.unsafe_load", "yaml.full_load"):
            found.append(f"{at} (runs or unpickles code)")
    return found, safe_loads


def test_the_scanner_catches_each_unsafe_form():
    source = "\n".join(
        [
            "import torch",
            "import torch as th",
            "from torch import load",
            "import pickle",
            "import numpy as np",
            "import yaml",
            "from pickle import loads",
            "import dill",
            "torch.load('a')",
            "th.load('a', weights_only=False)",
            "load('a')",
            "torch.load('a', weights_only=flag)",
            "pickle.load(f)",
            "np.load('a', allow_pickle=True)",
            "yaml.load(s)",
            "torch.jit.load('m')",
            "torch.load('ok', weights_only=True)",
            "np.load('ok')",
            "yaml.safe_load(s)",
        ]
    )
    found, safe = violations(source, "x.py")
    lines = sorted(int(f.split(":")[1]) for f in found)
    assert lines == [7, 8, 9, 10, 11, 12, 13, 14, 15, 16], found
    assert safe == 1


def test_no_unpickling_anywhere():
    found, safe_loads = [], {}
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            where = path.relative_to(ROOT).as_posix()
            bad, n = violations(path.read_text(), where)
            found += bad
            if n:
                safe_loads[where] = n
    assert not found, "\n".join(found)
    # the places that read torch files: the importer's .pt weights, the trainer's checkpoint files
    assert "af2/model/importer.py" in safe_loads and "training/safe_load.py" in safe_loads, safe_loads
