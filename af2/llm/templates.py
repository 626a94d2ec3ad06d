"""Versioned prompt templates, shipped as files in a package's ``templates/`` folder.

A template is ``<name>.v<N>.txt``: optional ``#`` comment lines, then a ``[system]`` section
and a ``[user]`` section. Placeholders are ``$name`` / ``${name}`` (``string.Template``, so
JSON braces in a prompt need no escaping; ``$$`` is a literal ``$``). A template's ``key``
(name, version and content hash) goes into the cache key, so a new version, or any edit of a
file, misses the cache instead of replaying replies to the old prompt.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from dataclasses import dataclass
from importlib import resources

_FILE = re.compile(r"^(?P<name>[A-Za-z0-9_]+)\.v(?P<version>\d+)\.txt$")
_SECTION = re.compile(r"^\[(system|user)\]\s*$", re.M)


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: int
    system: str | None
    user: str
    sha256: str

    @property
    def key(self) -> str:
        return f"{self.name}.v{self.version}:{self.sha256[:16]}"

    @property
    def version_tag(self) -> str:
        return f"v{self.version}"

    @classmethod
    def parse(cls, name: str, version: int, text: str) -> "PromptTemplate":
        sections, parts = {}, _SECTION.split(text)
        if parts[0].strip() and not all(ln.startswith("#") or not ln.strip() for ln in parts[0].splitlines()):
            raise ValueError(f"template {name}.v{version}: text before the first [section]")
        for label, body in zip(parts[1::2], parts[2::2]):
            sections[label] = body.strip("\n")
        if "user" not in sections:
            raise ValueError(f"template {name}.v{version}: no [user] section")
        return cls(name, version, sections.get("system"), sections["user"], hashlib.sha256(text.encode()).hexdigest())

    def render(self, **values) -> list[dict]:
        """Chat messages with the placeholders filled; non-string values are written as JSON."""
        values = {
            k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, indent=1) for k, v in values.items()
        }
        messages = (
            [{"role": "system", "content": string.Template(self.system).substitute(values)}] if self.system else []
        )
        return messages + [{"role": "user", "content": string.Template(self.user).substitute(values)}]


def versions(package: str, name: str) -> list[int]:
    folder = resources.files(package) / "templates"
    found = (_FILE.match(entry.name) for entry in folder.iterdir())
    return sorted(int(m["version"]) for m in found if m and m["name"] == name)


def load_template(package: str, name: str, version: int | None = None) -> PromptTemplate:
    """``<package>/templates/<name>.v<version>.txt``; the newest version when ``version`` is None."""
    known = versions(package, name)
    if not known:
        raise FileNotFoundError(f"no template {name!r} in {package}/templates")
    version = known[-1] if version is None else version
    if version not in known:
        raise FileNotFoundError(f"template {name!r} has versions {known}, not {version}")
    text = (resources.files(package) / "templates" / f"{name}.v{version}.txt").read_text("utf-8")
    return PromptTemplate.parse(name, version, text)
