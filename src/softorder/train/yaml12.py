"""YAML 1.2 for configs: PyYAML's safe loader and dumper with the YAML 1.2 core schema, so that
``1e-4`` is a number and ``010``, ``0x10``, ``1:30``, ``yes`` and ``on`` are text; a file's
mapping with one-line errors that name the file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

# YAML 1.2's core schema for plain scalars: ``1e-4`` is a number; ``010``, ``0x10``, ``1:30``,
# ``1_000``, ``yes`` and ``on`` (numbers or booleans in YAML 1.1) are text.
_CORE_SCHEMA = {
    "tag:yaml.org,2002:bool": (r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    "tag:yaml.org,2002:int": (r"^[-+]?[0-9]+$", "-+0123456789"),
    "tag:yaml.org,2002:float": (
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
}


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 booleans and numbers (:data:`_CORE_SCHEMA`)."""


class _Dumper(yaml.SafeDumper):
    """The writer matching :class:`_Loader`: text that would read back as a number is quoted."""


for _cls in (_Loader, _Dumper):
    _cls.yaml_implicit_resolvers = {
        ch: [(tag, rx) for tag, rx in resolvers if tag not in _CORE_SCHEMA]
        for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    for _tag, (_rx, _first) in _CORE_SCHEMA.items():
        _cls.add_implicit_resolver(_tag, re.compile(_rx), list(_first))
_Loader.add_constructor(  # decimal, never octal
    "tag:yaml.org,2002:int", lambda loader, node: int(loader.construct_scalar(node))
)


def dump_yaml(data: Any) -> str:
    """YAML text that :func:`read_yaml` reads back to ``data`` (keys in their order)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False)


def read_yaml(text: str, source: str) -> Any:
    """Parse YAML text; a syntax error names ``source`` and the line."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{source}:{where} is not valid YAML ({getattr(e, 'problem', None) or e})") from None



def read_mapping(path: str | Path) -> dict[str, Any]:
    """The key: value mapping of a YAML config file; an empty file, a list or bad YAML is an error
    that names the file."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a config file")
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    data = read_yaml(path.read_text(), str(path))
    if data is None:
        raise ValueError(f"{path} is empty; a config names at least its benchmark (e.g. benchmark: uci)")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of key: value, got a {type(data).__name__}")
    return data
