"""Data-parallel training under torchrun (2 CPU processes on gloo) follows a single process with the
same global batch, and its checkpoints resume on 2 processes or on 1."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from softorder.benchmarks import train
from softorder.train import distributed
from softorder.train.config import Config
from softorder.train.config_files import load_config
from softorder.train.sources import TaskSampler

CONFIG = (Path(__file__).parents[2] / "scripts" / "distributed_smoke.yaml").read_text()
TOL = 1e-4


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "softorder", "train", *args, "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def _records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _assert_close_runs(a: Path, b: Path) -> None:
    ra, rb = _records(a), _records(b)
    assert [x["step"] for x in ra] == [x["step"] for x in rb]
    for x, y in zip(ra, rb):
        for key in ("train_loss", "val_loss"):
            assert x[key] == pytest.approx(y[key], abs=TOL), (x["step"], key)
    res_a, res_b = (json.loads((r / "result.json").read_text()) for r in (a, b))
    assert res_a["best_step"] == res_b["best_step"]
    assert res_a["test_loss"] == pytest.approx(res_b["test_loss"], abs=TOL)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One 2-process run of 40 steps (2 × 16 rows per task per step), resumed to 60 steps on 2
    processes and, from a copy of its checkpoint, on 1; single-process references with 32 rows."""
    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("torch.distributed with gloo is not available")
    root = tmp_path_factory.mktemp("ddp")
    cfg_file = root / "cfg.yaml"
    cfg_file.write_text(CONFIG)
    ddp = root / "ddp"
    first = _torchrun(str(cfg_file), "--out", str(ddp))
    shutil.copytree(ddp, root / "ddp-at-40")
    resumed = _torchrun("--resume", str(ddp), "--set", "steps=60")
    ref = Config.from_dict({**load_config(cfg_file).to_dict(), "batch_size": 32})
    train(ref, root / "ref40", quiet=True)
    train(ref.replace(steps=60), root / "ref60", quiet=True)
    return {"root": root, "first": first, "resumed": resumed}


def test_two_processes_match_one_with_the_global_batch(runs: dict[str, Any]) -> None:
    root = runs["root"]
    _assert_close_runs(root / "ddp-at-40", root / "ref40")
    # rank 0 alone writes and reports
    assert runs["first"].stdout.count("mean test error") == 1
    assert [x["step"] for x in _records(root / "ddp-at-40")] == [20, 40]
    for name in ("config.yaml", "checkpoint.pt", "best.pt", "result.json"):
        assert (root / "ddp-at-40" / name).exists(), name
    ckpt = torch.load(root / "ddp-at-40" / "checkpoint.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and len(ckpt["rank_rng"]) == 2
    assert load_config(root / "ddp-at-40" / "config.yaml").optim.batch_size == 16


def test_resume_on_two_processes_continues_the_run(runs: dict[str, Any]) -> None:
    root = runs["root"]
    _assert_close_runs(root / "ddp", root / "ref60")
    assert runs["resumed"].stdout.count("mean test error") == 1


def test_two_process_checkpoint_resumes_on_one_process(runs: dict[str, Any]) -> None:
    run = runs["root"] / "one-process"
    shutil.copytree(runs["root"] / "ddp-at-40", run)
    (run / "result.json").unlink()
    # same global batch on one process: 1 × 32 rows per task
    cfg = load_config(run / "config.yaml", ["steps=60", "batch_size=32"])
    result = train(cfg, run, resume=True, quiet=True)
    assert result["steps"] == 60
    _assert_close_runs(run, runs["root"] / "ref60")


def test_sampler_shards_are_the_single_process_batches() -> None:
    n, batch, world = 23, 4, 3  # global batches of 12 rows cross epoch boundaries
    single = TaskSampler(n, batch * world, seed=5)
    ranks = [TaskSampler(n, batch, seed=5, rank=r, world_size=world) for r in range(world)]
    for _ in range(10):
        assert torch.equal(torch.cat([s.next() for s in ranks]), single.next())
    state = ranks[1].state_dict()
    assert all(torch.equal(state["perm"], s.state_dict()["perm"]) for s in ranks)
    with pytest.raises(ValueError, match=r"rank 2 is outside 0\.\.1"):
        TaskSampler(n, batch, seed=0, rank=2, world_size=2)


def test_helpers_are_no_ops_in_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.setup("cpu")
    assert distributed.rank() == 0 and distributed.world_size() == 1
    assert distributed.on_main(lambda: 7) == 7
    assert distributed.broadcast_object("x") == "x"
    assert distributed.all_gather_object(3) == [3]
    distributed.barrier()
    t = torch.ones(2)
    assert distributed.all_reduce_mean(t) is None and torch.equal(t, torch.ones(2))
    monkeypatch.setenv("RANK", "1")
    assert not distributed.is_main()


def test_setup_without_torchrun_variables_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    for key in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ValueError, match=r"RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT not set.*torchrun"):
        distributed.setup("cpu")


def test_more_processes_than_gpus_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", str(torch.cuda.device_count()))
    with pytest.raises(ValueError, match="--nproc_per_node"):
        distributed.select_device("cuda")


def _gloo_threads() -> list[str]:
    names = [Path(t, "comm").read_text().strip() for t in glob.glob("/proc/self/task/*")]
    return [n for n in names if "gloo" in n]


def test_teardown_frees_the_group_and_joins_gloo_threads() -> None:
    """gloo's worker threads live as long as the process group object; one still freeing the last
    collective's tensors when the interpreter finalizes aborts the process (issue 10). teardown
    must free the group, also after DistributedDataParallel held it (and imported torch modules)."""
    if not (dist.is_available() and dist.is_gloo_available()) or dist.is_initialized():
        pytest.skip("needs torch.distributed with gloo and no process group yet")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        group = weakref.ref(dist.group.WORLD)
        model = DistributedDataParallel(torch.nn.Linear(3, 2))
        model(torch.ones(4, 3)).sum().backward()  # gradients all-reduced on gloo's threads
        del model
        distributed.teardown(True)
        assert not dist.is_initialized()
        assert group() is None, "the process group outlived teardown, and so do gloo's threads"
        if sys.platform == "linux":
            assert _gloo_threads() == []
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_ddp_with_nccl_on_one_process_follows_the_plain_run(tmp_path: Path) -> None:
    """torchrun with one process on a GPU (DDP over NCCL) trains as the plain single-process run."""
    if not dist.is_nccl_available():
        pytest.skip("torch.distributed without NCCL")
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(CONFIG.replace("threads: 1", "threads: null") + "device: cuda\n")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
           "-m", "softorder", "train", str(cfg_file), "--out", str(tmp_path / "ddp"), "--quiet"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                            "MASTER_PORT")}
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    train(load_config(cfg_file), tmp_path / "plain", quiet=True)
    _assert_close_runs(tmp_path / "ddp", tmp_path / "plain")


def test_a_routed_core_trains_on_two_processes(tmp_path: Path) -> None:
    """A router mutates its buffers in the forward (step count, choices) and draws Gumbel noise:
    under DDP each rank draws its own routes (as its own dropout masks) and rank 0's buffers are
    the run's."""
    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("torch.distributed with gloo is not available")
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(CONFIG)
    _torchrun(str(cfg_file), "--out", str(tmp_path / "ddp"), "--set", "ordering=routed", "--set", "steps=20",
              "--set", "eval_every=10", "--set", "checkpoint_every=10")
    result = json.loads((tmp_path / "ddp" / "result.json").read_text())
    assert len(result["route_choice"]) == len(result["task_names"])
    state = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=True)["model"]
    assert int(state["core.route_step"]) == 20  # one count per step, not per rank
