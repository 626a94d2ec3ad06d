"""af2 in parts: the compiled core loads lazily, a missing extra is named on import, the torch a
core may load into, and pyproject.toml's extras against af2/_deps.py. Missing packages and a
missing or refused core are simulated (sys.modules entries set to None, a patched torch
version) in subprocesses: nothing is uninstalled or rebuilt."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from af2 import _deps
from af2._extension import torch_mismatch, torch_variant

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, prefix: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", prefix + textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, timeout=180
    )


def _ok(code: str, prefix: str = "") -> str:
    """stdout of ``python -c prefix+code`` in the repository root (which must exit 0)."""
    proc = _python(code, prefix)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


# ---- the compiled core loads lazily ----


def test_pure_python_parts_do_not_load_the_core():
    out = _ok("""
        import sys
        import af2, af2.text.sample, af2.audio.windows, af2.data, af2.data.manifest
        import af2.llm.jobs, af2.eval, af2.eval.judge, af2.reference
        print('af2._C' in sys.modules, 'af2.ops' in sys.modules)
        import af2.ops
        print('af2._C' in sys.modules)
    """)
    assert out.split() == ["False", "False", "True"]


def test_attribute_access_imports_the_subpackage():
    out = _ok("""
        import af2
        print(af2.ops.gated_residual.__name__, af2.build_info()["version"] == af2.__version__)
    """)
    assert out.split() == ["gated_residual", "True"]


_BLOCK_CORE = "import sys; sys.modules['af2._C'] = None\n"
_BLOCK_META = "import sys; sys.modules['af2._build_meta'] = None\n"
_OTHER_TORCH = "import torch; torch.__version__ = '2.99.0+cpu'\n"


@pytest.mark.parametrize(
    "setup, cause",
    [
        (_BLOCK_CORE, "af2's compiled core failed to load"),
        (_BLOCK_META, "af2's compiled core (af2._C) has not been built"),
        (_OTHER_TORCH, "but torch 2.99.0+cpu is installed (torch 2.99.0 is not the release it was built against"),
    ],
)
def test_core_that_cannot_load_names_cause_and_remedy_and_pure_parts_work(setup, cause):
    out = _ok(
        prefix=setup,
        code="""
        try:
            import af2.ops
        except ImportError as e:
            print("ERROR", e)
        from af2.data.manifest import Sample
        from af2.eval import normalize
        from af2.llm.jsonout import parse_json
        from af2 import reference
        import torch
        x = torch.ones(2, 3)
        assert torch.equal(reference.gated_residual(x, x, torch.zeros(1)), x)
        print("PURE", normalize("  The Dog. "), parse_json('{"a": 1}')[0])
    """,
    )
    error = next(line for line in out.splitlines() if line.startswith("ERROR"))
    assert cause in error
    assert "pip install --no-build-isolation --force-reinstall --no-deps" in error
    assert "af2.data, af2.llm, af2.eval and af2.reference do not need it" in error
    assert "PURE dog {'a': 1}" in out


def test_build_info_on_an_unloadable_core_raises_the_same_error():
    out = _ok(
        prefix=_BLOCK_CORE,
        code="""
        import af2
        try:
            af2.build_info()
        except ImportError as e:
            print("ERROR", e)
    """,
    )
    assert out.startswith("ERROR af2's compiled core failed to load")


def test_af2_info_on_an_unloadable_core_is_one_line_and_status_2():
    import subprocess
    import sys

    code = _BLOCK_CORE + "from af2.cli import main; raise SystemExit(main(['info']))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "the compiled core cannot be loaded: af2's compiled core failed to load" in lines[0]
    assert "Traceback" not in proc.stderr


# ---- which torch a core loads into (pure function over version strings) ----


@pytest.mark.parametrize(
    "built, bvar, runtime, rvar",
    [
        ("2.13.0+cpu", "cpu", "2.13.0+cpu", "cpu"),
        ("2.13.0+cpu", "cpu", "2.13.0", "cpu"),  # a CPU wheel without the local label (macOS, a mirror)
        ("2.13.0", "cu130", "2.13.0+cu130", "cu130"),  # PyPI's CUDA wheel vs torch's index's same build
        ("2.11.0+cu130", "cu130", "2.11.0+cu130", "cu130"),
        ("2.14.0.dev20260101+cpu", "cpu", "2.14.0.dev20260101+cpu", "cpu"),
        ("2.13.0a0+git1a2b3c", "cu130", "2.13.0a0+git1a2b3c", "cu130"),
    ],
)
def test_compatible_torch_is_accepted(built, bvar, runtime, rvar):
    assert torch_mismatch(built, bvar, runtime, rvar) is None


@pytest.mark.parametrize(
    "built, bvar, runtime, rvar, why",
    [
        ("2.13.0+cpu", "cpu", "2.13.1+cpu", "cpu", "torch 2.13.1 is not the release it was built against (2.13.0)"),
        ("2.13.0+cpu", "cpu", "2.14.0+cpu", "cpu", "not the release"),
        ("2.13.0", "cpu", "2.13", "cpu", "not the release"),
        ("2.14.0.dev20260101+cpu", "cpu", "2.14.0.dev20260102+cpu", "cpu", "not the release"),
        ("2.14.0.dev20260101+cpu", "cpu", "2.14.0+cpu", "cpu", "not the release"),
        (
            "2.13.0+cpu",
            "cpu",
            "2.13.0+cu130",
            "cu130",
            "the installed torch is a cu130 build, the core was built for cpu",
        ),
        ("2.13.0+cu128", "cu128", "2.13.0+cu130", "cu130", "a cu130 build, the core was built for cu128"),
        ("2.13.0", "cu130", "2.13.0", "cpu", "a cpu build, the core was built for cu130"),
        ("2.13.0+cu130", "cu130", "2.13.0+rocm6.2", "rocm6.2", "a rocm6.2 build"),
        ("2.13.0a0+git1a2b3c", "cu130", "2.13.0a0+git9f8e7d", "cu130", "another build of 2.13.0a0"),
    ],
)
def test_incompatible_torch_is_refused(built, bvar, runtime, rvar, why):
    assert why in torch_mismatch(built, bvar, runtime, rvar)


def test_torch_variant_names():
    assert torch_variant(None) == "cpu"
    assert torch_variant("13.0") == "cu130"
    assert torch_variant("12.8") == "cu128"
    assert torch_variant(None, "6.2.41133-dd7f95766") == "rocm6.2"


def test_build_info_names_the_torch_built_against():
    import torch

    import af2

    info = af2.build_info()
    assert info["torch_version"].partition("+")[0] == torch.__version__.partition("+")[0]
    assert info["torch_variant"] == torch_variant(torch.version.cuda, getattr(torch.version, "hip", None))


# ---- a part whose extra is missing says which extra to install ----


@pytest.mark.parametrize(
    "module, blocked, extra, dists",
    [
        ("af2.model", ["transformers"], "model", "transformers, which is"),
        ("af2.model", ["soxr", "safetensors"], "model", "safetensors, soxr, which are"),
        ("af2.data", ["soundfile"], "audio", "soundfile"),
        ("af2.audio", ["soxr"], "audio", "soxr"),
        ("af2.data.synth", ["numpy"], "audio", "numpy"),
        ("af2.eval", ["soxr"], "audio", "soxr"),
        ("af2.llm", ["openai"], "llm", "openai"),
        ("af2.data.llm", ["jiter"], "llm", "jiter"),
        ("af2.eval.judge", ["jsonschema"], "llm", "jsonschema"),
        ("training", ["deepspeed"], "train", "deepspeed"),
        ("training.train", ["yaml"], "train", "pyyaml"),
        ("training", ["transformers"], "train", "transformers"),
        ("af2.serve.app", ["fastapi"], "serve", "fastapi"),
        ("af2.serve.app", ["uvicorn", "fastapi"], "serve", "fastapi, uvicorn, which are"),
    ],
)
def test_missing_extra_is_named(module, blocked, extra, dists):
    out = _ok(f"""
        import sys
        for name in {blocked!r}:
            sys.modules[name] = None
        try:
            import {module}
        except ModuleNotFoundError as e:
            print(type(e).__name__, e.name, e)
    """)
    kind, name, _ = out.split(" ", 2)
    assert kind == "MissingExtraError" and name in blocked
    assert f"needs {dists}" in out
    assert f"pip install 'af2[{extra}]'" in out


def test_ops_nn_reference_integrations_need_no_extra():
    """The base install: every optional package blocked, the ops still import and run."""
    blocked = sorted({m for extra in _deps.EXTRAS for m in _deps.all_modules(extra)} | {"wandb"})
    out = _ok(f"""
        import sys
        for name in {blocked!r}:
            sys.modules[name] = None
        import torch
        import af2.ops, af2.nn, af2.reference, af2.integrations.flamingo
        x = torch.randn(2, 4)
        print(torch.allclose(af2.ops.gated_residual(x, x, torch.zeros(1)), x))
    """)
    assert out.split() == ["True"]


def test_require_checks_without_importing(monkeypatch):
    monkeypatch.setitem(sys.modules, "soxr", None)
    assert _deps.missing(["soxr", "json", "no_such_module_af2"]) == ["soxr", "no_such_module_af2"]
    with pytest.raises(
        _deps.MissingExtraError, match=r"^x needs soxr, which is not installed: pip install 'af2\[audio\]'$"
    ):
        _deps.require("x", "audio")
    _deps.require("x", "audio", ["json"])
    with pytest.raises(ValueError, match="unknown extra 'gpu'"):
        _deps.require("x", "gpu")


# ---- pyproject.toml ----


def _project() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _names(reqs: list[str]) -> tuple[set, set]:
    """(distributions, included af2 extras) of a requirement list."""
    import re

    dists, includes = set(), set()
    for req in reqs:
        name = re.match(r"[A-Za-z0-9_.-]+", req).group(0).lower()
        if name == "af2":
            includes |= set(re.search(r"\[(.*)\]", req).group(1).split(","))
        else:
            dists.add(name)
    return dists, includes


def test_base_install_is_torch_alone():
    assert [r.split(">")[0].split("=")[0] for r in _project()["dependencies"]] == ["torch"]


@pytest.mark.parametrize("extra", sorted(_deps.EXTRAS))
def test_extras_match_deps(extra):
    dists, includes = _names(_project()["optional-dependencies"][extra])
    assert dists == set(_deps.EXTRAS[extra].values())
    assert includes == set(_deps.INCLUDES[extra])


def test_all_and_dev_extras():
    extras = _project()["optional-dependencies"]
    assert _names(extras["all"])[1] == {"audio", "llm", "model", "train", "eval", "serve"}
    dists, includes = _names(extras["dev"])
    assert includes == {"all"}
    assert {"pytest", "pytest-benchmark", "hypothesis", "flamingo-pytorch", "build", "ruff"} <= dists


def test_demo_without_matplotlib_stops_before_training(tmp_path):
    proc = _python(f"""
        import sys
        sys.modules["matplotlib"] = None
        from training.demo import main
        sys.exit(main(["--quick", "--out", {str(tmp_path / "demo")!r}]))
    """)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "training.demo needs matplotlib, which is not installed: pip install 'af2[train]'" in proc.stderr
    assert not (tmp_path / "demo").exists()
