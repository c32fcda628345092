"""``${VAR}`` expansion for sources.toml, with ``VAR_FILE`` for Docker/Kubernetes secrets.

Expansion walks the parsed TOML tree and returns the expanded tree, the problems it
found (each naming the place and the variable, never a value), and the set of expanded
values so that later error messages can be scrubbed of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# ${VAR}, or ${VAR:-default} (the shell's form) for an optional value such as an API key.
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class Expansion:
    problems: list[str] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)  # places whose expansion failed

    def scrub(self, text: str) -> str:
        """Replace any expanded value in ``text`` by ``***``, longest first."""
        for value in sorted(self.secrets, key=len, reverse=True):
            if value:
                text = text.replace(value, "***")
        return text


def expand(tree: Any, env: Mapping[str, str], place: str, out: Expansion) -> Any:
    """Return ``tree`` with ``${VAR}`` replaced in every string; record problems in ``out``."""
    if isinstance(tree, str):
        return _expand_string(tree, env, place, out)
    if isinstance(tree, list):
        return [expand(v, env, f"{place}[{i}]", out) for i, v in enumerate(tree)]
    if isinstance(tree, dict):
        return {k: expand(v, env, f"{place}.{k}" if place else k, out) for k, v in tree.items()}
    return tree


def _expand_string(text: str, env: Mapping[str, str], place: str, out: Expansion) -> str:
    if "$" not in text:
        return text

    def substitute(m: re.Match[str]) -> str:
        name = m.group(1)
        if name is None:
            return "$"
        default = m.group(2)
        if default is not None and name not in env and f"{name}_FILE" not in env:
            return default
        value = _lookup(name, env, place, out)
        out.secrets.add(value)
        return value

    return _VAR.sub(substitute, text)


def _lookup(name: str, env: Mapping[str, str], place: str, out: Expansion) -> str:
    if name in env:
        return env[name]
    file_var = f"{name}_FILE"
    if file_var in env:
        path = Path(env[file_var])
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as e:
            out.problems.append(
                f"{place}: cannot read {file_var}={path}: {e.strerror or type(e).__name__}"
            )
            out.failed.add(place)
            return ""
    out.problems.append(
        f"{place}: environment variable {name} is not set "
        f"(set {name}, or {file_var} to a file holding the value)"
    )
    out.failed.add(place)
    return ""
