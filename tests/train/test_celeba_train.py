"""CelebA training (paper Sec. 4.4) on a miniature CelebA: run files, resume, backbone weights.

(Named test_celeba_train.py: pytest's default import mode needs basenames distinct from
tests/data/test_celeba.py.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from celeba_fixture import make_fake_celeba

from softorder.benchmarks import get, train
from softorder.cli import main
from softorder.data.celeba import CELEBA_ATTRIBUTES
from softorder.nn.backbones import celeba_net, resnet50_trunk
from softorder.train.config import Config

RESULT_KEYS = {
    "benchmark", "ordering", "seed", "task_names", "best_step", "steps", "test_loss", "test_error",
    "mean_test_loss", "mean_test_error", "val_loss", "val_error", "mean_val_loss", "mean_val_error",
    "train_time_s", "test_accuracy", "mean_test_accuracy", "eval_images",
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("celeba")
    make_fake_celeba(root, n=48, size=(40, 48), seed=0)  # 28 train, 9 val, 11 test images
    return root


def small_cfg(data_dir: Path, **changes: object) -> Config:
    base = Config(benchmark="celeba", data_dir=str(data_dir), small_backbone=True, image_size=32,
                  width=32, batch_size=7, steps=20, eval_every=10, checkpoint_every=10, num_workers=0,
                  dropout=0.1, select="val_error")
    return base.replace(**changes)


def test_short_run_writes_run_files(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = train(small_cfg(data_dir, num_workers=1), out, quiet=True)
    for name in ("config.yaml", "metrics.jsonl", "result.json", "checkpoint.pt", "best.pt"):
        assert (out / name).exists(), name
    assert any((out / "tb").iterdir())
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in recs] == [10, 20]
    for rec in recs:
        assert len(rec["train_loss"]) == len(rec["val_loss"]) == len(rec["val_error"]) == 40
        assert len(rec["S"]) == 40 and len(rec["S"][0]) == 4
        assert rec["mean_val_error"] == pytest.approx(sum(rec["val_error"]) / 40)
        h = rec["health"]  # run health on the first validation images, which every attribute reads
        assert len(h["rms"]) == len(h["dead"]) == len(h["dead_tasks"]) == len(h["s_entropy"]) == 4
        assert all(r > 0 for r in h["rms"]) and all(0 <= d < 1 for d in h["dead"])
    assert set(r) >= RESULT_KEYS
    assert set(r["health"]) == {"dead_last_depth", "at_chance", "unhealthy"}
    assert r["benchmark"] == "celeba" and r["ordering"] == "soft" and r["steps"] == 20
    assert r["task_names"] == list(CELEBA_ATTRIBUTES)
    assert len(r["test_error"]) == len(r["test_accuracy"]) == 40
    assert r["mean_test_accuracy"] == pytest.approx(1 - r["mean_test_error"])
    assert r["eval_images"] == {"val": 9, "test": 11}
    best = min(recs, key=lambda x: x["mean_val_error"])
    assert r["best_step"] == best["step"]
    assert r["mean_val_error"] == pytest.approx(best["mean_val_error"])
    assert json.loads((out / "result.json").read_text()) == r
    with pytest.raises(FileExistsError, match="--resume"):
        train(small_cfg(data_dir), out, quiet=True)


def test_resume_at_an_epoch_boundary_matches_uninterrupted(data_dir: Path, tmp_path: Path) -> None:
    # 28 train images / batch 7 = 4 steps per epoch; stopping at step 8 ends epoch 1 exactly, so the
    # resumed run sees the same batches (mid-epoch resumes restart the epoch: LoaderBatches).
    cfg = small_cfg(data_dir, steps=12, eval_every=4, checkpoint_every=4, max_eval_images=6)
    full = train(cfg, tmp_path / "full", quiet=True)
    train(cfg.replace(steps=8), tmp_path / "part", quiet=True)
    (tmp_path / "part" / "result.json").unlink()
    resumed = train(cfg, tmp_path / "part", resume=True, quiet=True)
    assert resumed["steps"] == 12 and resumed["eval_images"] == {"val": 6, "test": 6}
    assert resumed["test_loss"] == full["test_loss"]
    assert resumed["best_step"] == full["best_step"]

    def records(run: str) -> list[dict[str, object]]:
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(ln).items() if k not in ("time", "train_images_per_s")}
                for ln in lines]

    assert [rec["step"] for rec in records("part")] == [4, 8, 12]
    assert records("part") == records("full")  # step 12: same weights, S, dropout masks and batches


def test_cli_missing_backbone_weights_is_a_clear_error(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere" / "resnet50.pth"
    rc = main(["train", "celeba", "--data-dir", str(data_dir), "--backbone-weights", str(missing),
               "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert str(missing) in err and "does not exist" in err and "IMAGENET1K_V2" in err
    assert not (tmp_path / "run").exists()


def test_small_backbone_refuses_imagenet_weights() -> None:
    with pytest.raises(ValueError, match="small_backbone=false"):
        celeba_net(small_backbone=True, backbone_weights="resnet50.pth")


def test_resnet50_net_forward() -> None:
    torch.manual_seed(0)
    net = celeba_net().eval()  # random init, no download
    x = torch.randn(2, 3, 64, 64)
    assert net.encoders.module.trunk(x).shape == (2, 2048)
    logits = net(x)
    assert len(logits) == 40 and all(z.shape == (2,) for z in logits)
    with pytest.raises(ValueError, match=r"RGB images \[batch, 3, H, W\]"):
        net(torch.randn(2, 1, 64, 64))


@pytest.fixture(scope="module")
def resnet50_state() -> dict[str, torch.Tensor]:
    from torchvision.models import resnet50

    torch.manual_seed(1)
    return resnet50().state_dict()


def test_resnet50_weights_load_strictly(
    resnet50_state: dict[str, torch.Tensor], data_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "resnet50.pth"
    torch.save(resnet50_state, path)
    trunk = resnet50_trunk(path)
    assert torch.equal(trunk.state_dict()["conv1.weight"], resnet50_state["conv1.weight"])
    net = get("celeba").build_net(small_cfg(data_dir, small_backbone=False, backbone_weights=str(path)))
    loaded = net.encoders.module.trunk.state_dict()["layer4.2.bn3.running_var"]
    assert torch.equal(loaded, resnet50_state["layer4.2.bn3.running_var"])


def test_resnet50_wrong_weights_name_the_keys(
    resnet50_state: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    renamed = dict(resnet50_state)
    renamed["layer1.0.convX.weight"] = renamed.pop("layer1.0.conv1.weight")
    torch.save(renamed, tmp_path / "renamed.pth")
    keys = r"missing keys: layer1\.0\.conv1\.weight.*unexpected keys: layer1\.0\.convX\.weight"
    with pytest.raises(ValueError, match=keys + r".*resnet50-11ad3fa6\.pth"):
        resnet50_trunk(tmp_path / "renamed.pth")
    reshaped = {**resnet50_state, "conv1.weight": torch.zeros(64, 3, 3, 3)}
    torch.save(reshaped, tmp_path / "reshaped.pth")
    with pytest.raises(ValueError, match=r"wrong shapes: conv1\.weight \(64, 3, 3, 3\)"):
        resnet50_trunk(tmp_path / "reshaped.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="cannot read backbone weights"):
        resnet50_trunk(tmp_path / "junk.pth")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resnet50_trunk(tmp_path / "absent.pth")
