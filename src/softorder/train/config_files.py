"""Config files and the command line: a YAML config with ``--set key=value`` overrides, and a
benchmark's YAML with its ``quick:`` and per-ordering ``orderings:`` sections.

Precedence, lowest first: the benchmark's YAML, its ``quick:`` section (with ``--quick``), its
per-ordering section ``orderings: {soft: {...}}``, and the command line (``--set``, ``--data-dir``,
…), which always wins (:func:`read_benchmark_config`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from softorder.nn.orderings import ORDERINGS
from softorder.train.config import Config
from softorder.train.yaml12 import read_mapping


def load_config(path: str | Path, overrides: Sequence[str] = (), saved: bool = False) -> Config:
    """Read a YAML config and apply ``key=value`` overrides (``saved``: a run folder's
    ``config.yaml``, see :meth:`Config.from_dict`)."""
    data = read_mapping(path)
    data.update(parse_overrides(overrides))
    return Config.from_dict(data, source=str(path), saved=saved)


def parse_overrides(items: Sequence[str]) -> dict[str, str]:
    """``["lr=1e-4", ...]`` as ``{"lr": "1e-4"}``; the text is converted by the key's type
    (numbers, lists and booleans are parsed, text keys such as paths are taken literally)."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        out[name.strip()] = value
    return out


def read_benchmark_config(
    path: str | Path,
    quick: bool = False,
    overrides: Sequence[str] | dict[str, Any] = (),
    orderings: Sequence[str] | None = None,
    check: Callable[[Config], object] | None = None,
) -> tuple[Config, dict[str, dict[str, Any]]]:
    """A benchmark's YAML: its base config (``quick:`` applied when asked, then the command-line
    ``overrides``) and the per-ordering settings of its ``orderings:`` section, without the keys
    the command line sets (the command line wins). ``cfg.replace(**per[ordering])`` is the run of
    one ordering.

    Checked before anything runs (each config also by ``check``, e.g. the benchmark's task
    limits): the file as a whole, every section with its ordering, then the file with the command
    line for each of the ``orderings`` that will run (default: the config's own), so that a setting
    only some orderings take (``depth=8``: soft and parallel, not single) fails only where it is
    used. When ``orderings`` leaves out the file's own ``ordering:`` (a default for ``train``, not a
    method of ``compare``), the base config takes the first of them."""
    path = Path(path)
    data = read_mapping(path)
    if "benchmark" not in data:
        raise ValueError(f"{path}: no benchmark key; add one (e.g. benchmark: uci)")
    quick_part, per_ordering = data.pop("quick", None) or {}, data.pop("orderings", None) or {}
    for name, part in (("quick", quick_part), ("orderings", per_ordering)):
        if not isinstance(part, dict):
            raise ValueError(f"{path}: '{name}' must be a mapping, got a {type(part).__name__}")
    if quick:
        data.update(quick_part)
    given = overrides if isinstance(overrides, dict) else parse_overrides(overrides)
    unknown = sorted(map(str, set(per_ordering) - set(ORDERINGS)))
    if unknown:
        raise ValueError(f"{path}: unknown ordering(s) {unknown} under 'orderings'; choose from {ORDERINGS}")
    for o, part in per_ordering.items():
        if not isinstance(part or {}, dict):
            raise ValueError(f"{path}: orderings.{o} must be a mapping of key: value, got {part!r}")
        fixed = sorted(set(part or {}) & {"benchmark", "ordering", "seed"})
        if fixed:
            raise ValueError(f"{path}: orderings.{o} cannot set {', '.join(fixed)} (shared by all methods)")
    file_cfg = _checked(dict(data), str(path), check)  # the file's own errors name the file
    per = {o: dict(part or {}) for o, part in per_ordering.items()}
    for o, part in per.items():
        _checked({**file_cfg.to_dict(), **part, "ordering": o}, f"{path}, orderings.{o}", check)
    base = {**data, **given}
    if orderings and base.get("ordering", file_cfg.model.ordering) not in orderings:
        base["ordering"] = orderings[0]
    source = "the command line (--set and flags)" if given else str(path)
    cfg = _checked(base, source, check)
    per = {o: {k: v for k, v in part.items() if k not in given} for o, part in per.items()}
    for o in orderings if orderings is not None else [cfg.model.ordering]:
        _checked({**cfg.to_dict(), **per.get(o, {}), "ordering": o}, f"{source} with ordering {o}", check)
    return cfg, per


def _checked(data: dict[str, Any], source: str, check: Callable[[Config], object] | None) -> Config:
    """``Config.from_dict(data)``, then ``check`` on it; an error names ``source``."""
    cfg = Config.from_dict(data, source=source)
    if check is not None:
        try:
            check(cfg)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None
    return cfg
