from __future__ import annotations

from pathlib import Path

import pytest

from softorder.benchmarks import benchmark_config, check
from softorder.train.config import Config
from softorder.train.config_files import load_config, parse_overrides
from softorder.train.rundir import RunDir


def test_unknown_key_names_the_key(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("benchmark: uci\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) learning_rate; valid keys: .*\blr\b"):
        load_config(p)


def test_overrides_are_converted_by_the_keys_type(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("benchmark: uci\n")
    cfg = load_config(p, ["lr=0.01", "ordering=parallel", "s_lr=null", "fractions=[0.5, 0.25, 0.25]"])
    assert cfg.optim.lr == 0.01 and cfg.model.ordering == "parallel" and cfg.optim.s_lr is None
    assert cfg.data.fractions == [0.5, 0.25, 0.25]
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["lr"])


@pytest.mark.parametrize("text", ["1e-4", "1E-4", "1.0e-4", "0.0001", ".1e-3", "+1e-4"])
def test_numbers_in_every_notation(tmp_path: Path, text: str) -> None:
    """YAML 1.1 reads 1e-4 as a string: here it is a number, on the command line and in files."""
    p = tmp_path / "c.yaml"
    p.write_text(f"benchmark: uci\nlr: {text}\n")
    assert load_config(p).optim.lr == pytest.approx(1e-4)
    cfg = load_config(tmp_path / "c.yaml", [f"s_lr={text}", f"weight_decay={text}"])
    assert cfg.optim.s_lr == pytest.approx(1e-4) and cfg.optim.weight_decay == pytest.approx(1e-4)
    assert isinstance(cfg.optim.s_lr, float)
    assert load_config(p, ["steps=1e3"]).optim.steps == 1000


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("tasks=999", r"tasks must be in 1\.\.10 for uci, got 999"),
        ("tasks=-1", r"tasks must be an integer >= 1 \(or null\), got -1"),
        ("tasks=0", r"tasks must be an integer >= 1 \(or null\), got 0"),
        ("s_lr=-0.1", r"s_lr must be a number > 0 \(or null\), got -0.1"),
        ("weight_decay=-1e-4", r"weight_decay must be a number >= 0, got -0.0001"),
        ("steps=1.5", r"steps must be an integer >= 1, got 1.5"),
        ("threads=0", r"threads must be an integer >= 1 \(or null\), got 0"),
        ("lr=abc", r"lr must be a number > 0, got 'abc'"),
        ("lr=", r"lr must be a number > 0, got ''"),
        ("steps=true", r"steps must be an integer >= 1, got True"),
        ("dropout=1", r"dropout must be a number in \[0, 1\), got 1"),
        ("compile=maybe", r"compile must be true or false, got 'maybe'"),
        ("ordering=hard", r"ordering must be one of single, parallel, permuted, soft, gated, routed, got 'h"),
        ("fractions=[0.8,0.2,0.0]", r"fractions must be a list of numbers in \(0, 1\), got \[0.8, 0.2, 0"),
        ("fractions=[0.5,0.5]", r"fractions must be three numbers"),
        ("checkpoint_every=125", r"checkpoint_every \(125\) must be a multiple of eval_every \(50\)"),
        ("device=gpu0", r"device must be cpu, cuda, cuda:N or mps, got 'gpu0'"),
    ],
)
def test_bad_values_name_the_key_the_value_and_what_is_allowed(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        benchmark_config("uci", overrides=[override])


def test_depth_follows_the_orderings_rule() -> None:
    """The config check and the orderings share one depth rule (``resolve_depth``); a depth set on
    the command line is checked against the orderings that will run, not every section of the file
    (recurrent depth: soft and parallel take depth=8 over 4 layers, single does not)."""
    with pytest.raises(ValueError, match=r"permuted ordering applies each of the 4 layers exactly once"):
        benchmark_config("uci", overrides=["ordering=permuted", "depth=3"])
    with pytest.raises(ValueError, match=r"parallel ordering .* must be a multiple of .* \(4\); got depth=6"):
        benchmark_config("uci", overrides=["ordering=parallel", "depth=6"])
    assert benchmark_config("uci", overrides=["ordering=parallel", "depth=8"])[0].model.depth == 8
    assert benchmark_config("uci", overrides=["ordering=routed", "depth=3"])[0].model.depth == 3
    cfg, per = benchmark_config("uci", overrides=["depth=8"], orderings=["parallel", "soft"])
    assert cfg.replace(**per["parallel"], ordering="parallel").model.depth == 8
    with pytest.raises(ValueError, match=r"with ordering single: single ordering applies each"):
        benchmark_config("uci", overrides=["depth=8"], orderings=["parallel", "single"])


def test_every_section_of_the_file_is_checked(tmp_path: Path) -> None:
    """A section of an ordering that does not run still fails when the file itself is wrong, by
    the config's rules and by the benchmark's (its task limit)."""
    p = tmp_path / "c.yaml"
    p.write_text("benchmark: uci\norderings:\n  permuted: {depth: 3}\n")
    with pytest.raises(ValueError, match=r"c.yaml, orderings.permuted: permuted ordering applies"):
        benchmark_config("", path=p, overrides=["lr=0.01"])
    p.write_text("benchmark: mnist\norderings:\n  single: {tasks: 46}\n")
    with pytest.raises(ValueError, match=r"c.yaml, orderings.single: tasks must be in 1..45 for mnist"):
        benchmark_config("", path=p)


def test_the_files_own_ordering_is_not_checked_when_compare_leaves_it_out(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("benchmark: uci\nordering: permuted\n")
    cfg, _ = benchmark_config("", path=p, overrides=["depth=8"], orderings=["parallel", "soft"])
    assert (cfg.model.ordering, cfg.model.depth) == ("parallel", 8)
    with pytest.raises(ValueError, match=r"permuted ordering applies each"):
        benchmark_config("", path=p, overrides=["depth=8"])  # train: the file's ordering runs


def test_task_counts_per_benchmark() -> None:
    with pytest.raises(ValueError, match=r"tasks must be in 1\.\.45 for mnist"):
        check(Config(benchmark="mnist", tasks=46))
    with pytest.raises(ValueError, match=r"tasks must be in 1\.\.30 for omniglot"):
        check(Config(benchmark="omniglot", alphabet_set="background", tasks=31))
    assert check(Config(benchmark="synthetic", tasks=500)).data.tasks == 500


def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    """A GPU run's config reads anywhere; the run says the device is missing when it starts."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert Config(device="cuda:1").run.device == "cuda:1"
    with pytest.raises(ValueError, match="device=cuda but no CUDA GPU is visible here; use device=cpu"):
        from softorder.train.distributed import require_device

        require_device("cuda")


@pytest.mark.parametrize("path", ["/data/run#1", "x: y", "null", "~/with space", "a=b"])
def test_paths_are_taken_literally(path: str) -> None:
    cfg, _ = benchmark_config("uci", overrides=[f"data_dir={path}"])
    assert cfg.data.data_dir == path


def test_command_line_wins_over_the_per_ordering_section() -> None:
    """uci.yaml sets soft: {dropout: 0.0, depth_norm: rms}; --set dropout=0.3 must win (no crash)."""
    cfg, per = benchmark_config("uci", overrides=["dropout=0.3"])
    soft = cfg.replace(**per["soft"])
    assert soft.model.dropout == 0.3 and soft.model.depth_norm == "rms"
    cfg, per = benchmark_config("mnist", overrides=["s_lr=1e-2"])
    assert cfg.replace(**per["soft"]).optim.s_lr == 0.01


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"is empty; a config names at least its benchmark"),
        ("- benchmark: uci\n", r"expected a mapping of key: value, got a list"),
        ("benchmark: uci\nlr: [0.1\n", r"c.yaml: line \d+ is not valid YAML"),
        ("lr: 0.1\n", r"no benchmark key"),
        ("benchmark: uci\nquick: 3\n", r"'quick' must be a mapping"),
    ],
)
def test_bad_files_are_named(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ValueError, match=message):
        benchmark_config("", path=p)


@pytest.mark.parametrize("name", ["mnist", "uci", "synthetic", "omniglot"])
def test_shipped_configs_load(name: str) -> None:
    cfg, per = benchmark_config(name)
    quick, _ = benchmark_config(name, quick=True)
    assert cfg.benchmark == name and quick.optim.steps <= cfg.optim.steps
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
    p.write_text("benchmark: uci\norderings:\n  soft: {lr: -1}\n")
    with pytest.raises(ValueError, match=r"orderings\.soft: lr must be a number > 0"):
        benchmark_config("uci", path=p)


@pytest.mark.parametrize(("text", "value"), [("010", 10), ("+007", 7), ("1_000", None), ("0x10", None)])
def test_integers_are_decimal(text: str, value: int | None) -> None:
    """YAML 1.1 reads 010 as 8 and 0x10 as 16: here integers are decimal, anything else is text."""
    if value is None:
        with pytest.raises(ValueError, match=f"seed must be an integer >= 0, got '{text}'"):
            Config(seed=text)
    else:
        assert Config(seed=text).seed == value


def test_yes_is_not_a_boolean_and_numpy_numbers_are_numbers() -> None:
    import numpy as np

    with pytest.raises(ValueError, match="compile must be true or false, got 'yes'"):
        Config(compile="yes")
    assert Config(seed=np.int64(3), steps=np.float64(10.0)).optim.steps == 10


def test_written_configs_read_back(tmp_path: Path) -> None:
    """Text that looks like a number is quoted when a run writes config.yaml."""
    from softorder.train.rundir import RunDir

    cfg = Config(benchmark="celeba", data_dir="1e5", backbone_weights="010")
    RunDir(tmp_path).write_config(cfg.to_dict())
    assert load_config(tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("soft: [1]", r"orderings.soft must be a mapping"),
        ("soft: {seed: 3}", r"orderings.soft cannot set seed"),
    ],
)
def test_bad_per_ordering_sections(tmp_path: Path, section: str, message: str) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(f"benchmark: uci\norderings:\n  {section}\n")
    with pytest.raises(ValueError, match=message):
        benchmark_config("", path=p)


def test_keys_live_in_typed_sections_and_a_benchmark_has_only_its_own() -> None:
    cfg = Config(benchmark="omniglot", lr=3e-3, channels=24, image_size=28, eval_every=50,
                 checkpoint_every=100)
    assert (cfg.optim.lr, cfg.model.channels, cfg.data.image_size, cfg.run.eval_every) == (3e-3, 24, 28, 50)
    assert Config.from_dict(cfg.to_dict()) == cfg and cfg.replace(seed=3).seed == 3
    with pytest.raises(ValueError, match=r"image_size is a key of .*omniglot.*, not of uci; valid keys: "):
        benchmark_config("uci", overrides=["image_size=28"])
    with pytest.raises(ValueError, match=r"unknown key\(s\) widht"):
        Config(benchmark="uci", widht=3)


def test_a_saved_config_with_every_benchmarks_keys_still_reads(tmp_path: Path) -> None:
    """softorder 0.1 wrote all 38 keys into every run's config.yaml; resume and compare read them."""
    old = {**Config(benchmark="uci").to_dict(), "image_size": 105, "channels": 53, "num_workers": 2}
    p = tmp_path / "config.yaml"
    RunDir(tmp_path).write_config(old)
    assert load_config(p, saved=True) == Config(benchmark="uci")
    with pytest.raises(ValueError, match="image_size is a key of"):
        load_config(p)


def test_a_saved_celeba_config_keeps_its_image_caps_under_their_new_names() -> None:
    old = {"benchmark": "celeba", "max_train_per_task": 4000, "max_eval_per_task": 1000, "image_size": 64,
           "channels": 53, "fractions": [0.6, 0.2, 0.2]}
    cfg = Config.from_dict(old, saved=True)
    assert (cfg.data.max_train_images, cfg.data.max_eval_images, cfg.data.image_size) == (4000, 1000, 64)


def test_task_limits_match_the_loaders() -> None:
    from softorder.benchmarks import get
    from softorder.data.celeba import CELEBA_ATTRIBUTES
    from softorder.data.mnist import ALL_PAIRS
    from softorder.data.omniglot import ALPHABET_SETS
    from softorder.data.uci import UCI_DATASETS

    assert get("uci").max_tasks(Config(benchmark="uci")) == len(UCI_DATASETS)
    assert get("mnist").max_tasks(Config(benchmark="mnist")) == len(ALL_PAIRS)
    assert get("celeba").max_tasks(Config(benchmark="celeba")) == len(CELEBA_ATTRIBUTES)
    for name, alphabets in ALPHABET_SETS.items():
        assert get("omniglot").max_tasks(Config(benchmark="omniglot", alphabet_set=name)) == len(alphabets)


def test_every_ordering_says_which_of_the_ordering_keys_it_reads() -> None:
    from softorder.nn.orderings import ORDERINGS
    from softorder.train.config import ORDERING_KEYS, READS

    assert set(READS) == set(ORDERINGS)
    assert all(keys <= set(ORDERING_KEYS) for keys in READS.values())
