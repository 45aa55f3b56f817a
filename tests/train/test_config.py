from __future__ import annotations

from pathlib import Path

import pytest

from softorder.experiments.compare import benchmark_config
from softorder.train.config import Config, load_config, parse_overrides


def test_unknown_key_names_the_key(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("benchmark: uci\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) learning_rate; valid keys: .*\blr\b"):
        load_config(p)


def test_overrides_are_parsed_as_yaml(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("benchmark: uci\n")
    cfg = load_config(p, ["lr=0.01", "ordering=parallel", "s_lr=null", "fractions=[0.5, 0.25, 0.25]"])
    assert cfg.lr == 0.01 and cfg.ordering == "parallel" and cfg.s_lr is None
    assert cfg.fractions == [0.5, 0.25, 0.25]
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["lr"])


def test_bad_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown ordering 'hard'"):
        Config(ordering="hard")
    with pytest.raises(ValueError, match="steps must be at least 1"):
        Config(steps=0)


@pytest.mark.parametrize("name", ["mnist", "uci", "synthetic", "omniglot"])
def test_shipped_configs_load(name: str) -> None:
    cfg, per = benchmark_config(name)
    quick, _ = benchmark_config(name, quick=True)
    assert cfg.benchmark == name and quick.steps <= cfg.steps
    for part in per.values():
        cfg.replace(**part)


def test_unknown_benchmark_lists_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown benchmark 'cifar'; choose one of .*mnist.*uci"):
        benchmark_config("cifar")


def test_unknown_ordering_section(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("benchmark: uci\norderings:\n  hard: {lr: 0.1}\n")
    with pytest.raises(ValueError, match="unknown ordering"):
        benchmark_config("uci", path=p)
    p.write_text("benchmark: uci\norderings:\n  soft: {slr: 0.1}\n")
    with pytest.raises(ValueError, match="unknown key"):
        benchmark_config("uci", path=p)
