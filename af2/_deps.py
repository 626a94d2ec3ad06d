"""Optional dependencies: which extra of ``pip install 'af2[...]'`` brings which package.

``pip install af2`` installs torch only and gives af2.ops, af2.nn, af2.reference and
af2.integrations. Every other part checks its packages when it is imported, with
:func:`require`, so a missing one is named together with the extra that installs it, instead of
a bare ``No module named ...`` from deep inside. The lists here are the import names; the
distributions are in pyproject.toml's ``[project.optional-dependencies]`` (a test keeps the two
in step). See docs/packaging.md.
"""

from __future__ import annotations

import importlib.util
from typing import Iterable

#: extra -> {import name: distribution}; an extra also holds the extras in INCLUDES.
EXTRAS: dict[str, dict[str, str]] = {
    "audio": {"numpy": "numpy", "soundfile": "soundfile", "soxr": "soxr", "tqdm": "tqdm"},
    "llm": {"openai": "openai", "jsonschema": "jsonschema", "jiter": "jiter", "tqdm": "tqdm"},
    "model": {"transformers": "transformers", "tokenizers": "tokenizers", "safetensors": "safetensors"},
    "train": {"deepspeed": "deepspeed", "yaml": "pyyaml", "matplotlib": "matplotlib", "tensorboard": "tensorboard"},
    "eval": {"pycocoevalcap": "pycocoevalcap"},
    "serve": {"fastapi": "fastapi", "uvicorn": "uvicorn"},
}
INCLUDES: dict[str, tuple[str, ...]] = {
    "audio": (),
    "llm": (),
    "model": ("audio",),
    "train": ("model",),
    "eval": (),
    "serve": ("model",),
}


class MissingExtraError(ModuleNotFoundError):
    """A part of af2 was imported without the packages of its extra.

    ``extra`` is the extra to install, ``missing`` the import names that are absent;
    ``name`` (as for any ModuleNotFoundError) is the first of them.
    """

    def __init__(self, part: str, extra: str, missing: list[str]):
        dists = sorted({all_modules(extra).get(m, m) for m in missing})
        super().__init__(
            f"{part} needs {', '.join(dists)}, which {'is' if len(dists) == 1 else 'are'} not "
            f"installed: pip install 'af2[{extra}]'",
            name=missing[0],
        )
        self.part, self.extra, self.missing = part, extra, missing


def all_modules(extra: str) -> dict[str, str]:
    """{import name: distribution} of ``extra`` with the extras it includes."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r} (known: {', '.join(EXTRAS)})")
    out: dict[str, str] = {}
    for inner in INCLUDES[extra]:
        out.update(all_modules(inner))
    out.update(EXTRAS[extra])
    return out


def missing(modules: Iterable[str]) -> list[str]:
    """The import names among ``modules`` that cannot be found (nothing is imported).

    A name set to None in ``sys.modules`` counts as missing, as it does for ``import``.
    """
    out = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # ValueError: in sys.modules without a __spec__
            found = False
        if not found:
            out.append(name)
    return out


def require(part: str, extra: str, modules: Iterable[str] | None = None) -> None:
    """Raise :class:`MissingExtraError` if a package ``part`` needs is missing.

    part: what is being imported ("af2.model"), for the message; extra: the extra that installs
    the packages; modules: the import names to check, default every package of ``extra``.
    """
    names = list(all_modules(extra) if modules is None else modules)
    absent = missing(names)
    if absent:
        raise MissingExtraError(part, extra, absent)
