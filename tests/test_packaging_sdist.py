"""The sdist holds everything the build needs: it is built here, installed with no extras into a
fresh venv that holds only torch (and the build tools), and there every op runs and the parts
that need an extra name it. Slow (it compiles the CPU core: a few minutes on 2 cores).

torch is installed into the venv by pip as configured on the machine, at the running torch's
exact version (2.13.0+cpu here: pip finds it on local disk through its find-links; elsewhere pip
fetches it from its index). Nothing of this checkout is visible in the venv: it has no system
site-packages, runs outside the repository and without PYTHONPATH.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(args: list, *, env: dict, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", out, ROOT],
        env=dict(os.environ),
        cwd=ROOT,
        timeout=300,
    )
    (path,) = out.glob("af2-*.tar.gz")
    return path


def test_sdist_holds_the_build_inputs(sdist):
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    need = [
        "sources.txt",
        "CMakeLists.txt",
        "setup.py",
        "pyproject.toml",
        "MANIFEST.in",
        "training/configs/pretrain.yaml",
        "training/configs/curriculum.yaml",
    ]
    for line in (ROOT / "sources.txt").read_text().splitlines():
        line = line.split("#", 1)[0].split()
        if line:
            need.append(line[1])
    need += [
        str(p.relative_to(ROOT))
        for d in ("csrc", "bindings")
        for p in (ROOT / d).rglob("*")
        if p.suffix in (".h", ".cuh")
    ]
    need += [str(p.relative_to(ROOT)) for p in (ROOT / "af2").rglob("templates/*.txt")]
    assert [n for n in need if n not in names] == []
    assert not [n for n in names if n.endswith((".so", ".pyc")) or n == "af2/_build_meta.py"]


@pytest.fixture(scope="module")
def venv(tmp_path_factory, sdist) -> tuple[Path, dict, Path]:
    """(the venv's python, its environment, a working directory outside the checkout) with only
    torch installed, then af2 from the sdist (no extras)."""
    base = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", base / "env"], env=dict(os.environ), cwd=base, timeout=300)
    bin_dir = base / "env" / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(base / "env"),
        MAX_JOBS=env.get("MAX_JOBS", "2"),
        AF2_BUILD_CUDA="0",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    py = bin_dir / "python"
    work = base / "work"
    work.mkdir()
    _run(
        [py, "-m", "pip", "install", f"torch=={torch.__version__}", "setuptools>=70", "wheel", "ninja"],
        env=env,
        cwd=work,
        timeout=900,
    )
    _run([py, "-m", "pip", "install", "--no-build-isolation", sdist], env=env, cwd=work, timeout=1500)
    return py, env, work


def _venv_python(venv, code: str) -> subprocess.CompletedProcess:
    py, env, work = venv
    return subprocess.run(
        [str(py), "-c", textwrap.dedent(code)], env=env, cwd=work, capture_output=True, text=True, timeout=300
    )


def test_only_torch_came_with_af2(venv):
    out = _venv_python(
        venv,
        """
        import importlib.util, af2
        print(af2.__file__)
        print(*[m for m in ("numpy", "transformers", "soundfile", "openai", "deepspeed", "yaml")
                if importlib.util.find_spec(m)])
    """,
    )
    assert out.returncode == 0, out.stderr
    where, present = out.stdout.splitlines()
    assert "site-packages" in where and str(ROOT) not in where
    assert present == ""


def test_every_op_runs_in_the_venv(venv):
    py, env, work = venv
    proc = _run([py, ROOT / "tests" / "packaging" / "ops_smoke.py"], env=env, cwd=work, timeout=300)
    assert proc.stdout.splitlines()[-1] == "ops ok"


def test_parts_that_need_an_extra_name_it(venv):
    out = _venv_python(
        venv,
        """
        for part, extra in (("af2.model", "model"), ("af2.data", "audio"), ("af2.llm", "llm"),
                            ("af2.eval", "audio"), ("training", "train")):
            try:
                __import__(part)
            except ImportError as e:
                assert f"pip install 'af2[{extra}]'" in str(e), (part, str(e))
                print(part, "->", extra)
            else:
                raise AssertionError(f"{part} imported without its extra")
    """,
    )
    assert out.returncode == 0, out.stderr
    assert "af2.model -> model" in out.stdout and "training -> train" in out.stdout


def test_trainer_and_its_configs_are_installed(venv):
    out = _venv_python(
        venv,
        """
        import importlib.util
        from pathlib import Path
        spec = importlib.util.find_spec("training")
        folder = Path(spec.submodule_search_locations[0])
        print(folder.parent.name, sorted(p.name for p in (folder / "configs").glob("*.yaml")))
    """,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split(" ", 1) == [
        "site-packages",
        "['clap.yaml', 'curriculum.yaml', 'long.yaml', 'pretrain.yaml', 'sft.yaml']\n",
    ]


def test_af2_info_runs_in_the_venv(venv):
    py, env, work = venv
    proc = _run([py.parent / "af2", "info"], env=env, cwd=work, timeout=120)
    assert "torch_version" in proc.stdout and torch.__version__ in proc.stdout
