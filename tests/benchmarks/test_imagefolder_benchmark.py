"""``softorder train imagefolder``: DIR/<task>/<class>/ images, the Omniglot conv net."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from own_data import IMAGE_FAST, write_images
from softorder.benchmarks import benchmark_config, build_net, load_tasks, train
from softorder.train.config import Config
from softorder.train.rundir import RunDir


def test_a_brief_run_beats_chance(tmp_path: Path) -> None:
    root = write_images(tmp_path / "d", per_class=25)
    cfg = Config(benchmark="imagefolder", data_dir=str(root), padding=1, **IMAGE_FAST)
    r = train(cfg, tmp_path / "run", quiet=True)
    assert r["task_names"] == ["bars", "light"] and max(r["test_error"]) < 0.35  # chance: 0.5
    saved = json.loads(RunDir(tmp_path / "run").preprocessing.read_text())
    light = saved["tasks"]["light"]
    assert {k: light[k] for k in ("kind", "classes", "image_size", "color", "train_images")} == {
        "kind": "imagefolder", "classes": ["bright", "dark"], "image_size": 16, "color": "grayscale",
        "train_images": 30}
    assert 0 < light["train_rms"] < 1


def test_rgb_images_and_the_shipped_config(tmp_path: Path) -> None:
    root = write_images(tmp_path / "d", per_class=5, rgb=True)
    cfg, _ = benchmark_config("imagefolder", overrides=[f"data_dir={root}", "color=rgb", "image_size=16"])
    tasks = load_tasks(cfg)
    net = build_net(cfg, tasks)
    assert tasks[0].input_shape == (3, 16, 16) and net.decoders.num_classes == [2, 2]
    with pytest.raises(ValueError, match="channels=2 cannot hold the 3 channels of rgb images"):
        benchmark_config("imagefolder", overrides=["color=rgb", "channels=2"])
