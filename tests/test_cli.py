"""User mistakes end in one line ``softorder: error: …`` (exit 2) naming the key, file or path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from softorder.cli import main

QUICK = ["--set", "steps=20", "--set", "eval_every=10", "--set", "checkpoint_every=10", "--quiet"]


def _err(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("softorder: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_set_wins_over_the_per_ordering_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("benchmark: synthetic\ntasks: 2\nwidth: 8\norderings:\n  soft: {dropout: 0.0, lr: 0.01}\n")
    out = tmp_path / "run"
    argv = ["train", str(cfg), "--set", "dropout=0.3", "--set", "lr=1e-4", "--out", str(out), *QUICK]
    assert main(argv) == 0
    written = (out / "config.yaml").read_text()
    assert "dropout: 0.3" in written and "lr: 0.0001" in written


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "synthetic", "--trials", "0"], "trials must be at least 1, got 0"),
        (["compare", "synthetic", "--workers", "0"], "workers must be at least 1, got 0"),
        (["compare", "synthetic", "--workers", "-2"], "workers must be at least 1, got -2"),
        (["compare", "synthetic", "--orderings", ","], "no orderings to compare"),
        (["train", "synthetic", "--set", "lr=fast"], "lr must be a number > 0, got 'fast'"),
        (["train", "synthetic", "--set", "device=cuda:7"], "device=cuda:7 but no CUDA GPU"),
    ],
)
def test_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    if "device=cuda:7" in argv:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    assert message in _err(capsys, [*argv, "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()  # checked before any file is written


def test_bad_config_files_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("benchmark: synthetic\nlr: [1\n")
    assert "bad.yaml: line" in _err(capsys, ["train", str(bad)])
    bad.write_text("")
    assert "bad.yaml is empty" in _err(capsys, ["train", str(bad)])
    bad.write_text("- 1\n- 2\n")
    assert "expected a mapping" in _err(capsys, ["train", str(bad)])


def test_out_is_a_file_or_read_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "f"
    f.write_text("")
    assert "is a file" in _err(capsys, ["train", "synthetic", "--out", str(f), *QUICK])
    if os.geteuid() == 0:
        pytest.skip("root can write a read-only folder")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert "ro/run" in _err(capsys, ["train", "synthetic", "--out", str(ro / "run"), *QUICK])
    finally:
        ro.chmod(0o700)


def test_run_dir_without_resume_suggests_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", "synthetic", "--out", str(out), *QUICK]) == 0
    capsys.readouterr()
    assert f"softorder train --resume {out}" in _err(capsys, ["train", str(out)])


def test_resume_after_an_edit_of_the_ordering(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", "synthetic", "--out", str(out), *QUICK]) == 0
    capsys.readouterr()
    (out / "result.json").unlink()
    cfg = out / "config.yaml"
    cfg.write_text(cfg.read_text().replace("ordering: soft", "ordering: parallel"))
    assert "--resume cannot change ordering ('soft' -> 'parallel')" in _err(
        capsys, ["train", "--resume", str(out), "--set", "steps=30"]
    )


def test_resume_lowering_steps_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", "synthetic", "--out", str(out), *QUICK]) == 0
    capsys.readouterr()
    argv = ["train", "--resume", str(out), "--set", "steps=10"]
    assert "steps=10 is below the 20 steps" in _err(capsys, argv)


def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOFTORDER_DEBUG", "1")
    with pytest.raises(ValueError, match="lr must be a number"):
        main(["train", "synthetic", "--set", "lr=fast"])


def test_one_trial_has_no_ci(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["compare", "synthetic", "--orderings", "parallel,soft", "--trials", "1", "--workers", "1",
            "--out", str(tmp_path), *QUICK[:-1]]
    assert main(argv) == 0
    text = (tmp_path / "results.json").read_text()
    assert "NaN" not in text
    data = json.loads(text)
    assert data["methods"]["soft"]["test_error_ci95"] is None
    # one paired difference: no test, tie or not (None)
    assert data["comparisons"][0]["p_value"] is None
    md = (tmp_path / "results.md").read_text()
    assert "± n/a" in md and "nan" not in md


def test_missing_data_leaves_no_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data#1: x"  # taken literally, never parsed
    err = _err(capsys, ["train", "uci", "--data-dir", str(data), "--out", str(tmp_path / "o")])
    assert str(data / "uci" / "australian") in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--test-fraction", "0.2"], "--test-fraction (config key test_fraction) applies to omniglot, not to "
                                     "synthetic; leave it out"),
        (["--image-size", "28"], "--image-size (config key image_size) applies to celeba, omniglot"),
        (["--set", "test_fraction=0.2"], "the command line (--set and flags): test_fraction is a key of"),
        (["--trials", "0"], "trials must be at least 1, got 0"),
        (["--workers", "0"], "workers must be at least 1, got 0"),
        (["--orderings", "soft,hard"], "unknown ordering(s) ['hard']"),
    ],
)
def test_compare_names_the_flag_and_refuses_before_it_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["compare", "synthetic", *argv, "--out", str(tmp_path / "o")]) == 2
    said = capsys.readouterr()
    assert message in said.err and "synthetic.yaml" not in said.err  # the flag, not the shipped file
    assert said.out == ""  # no header before the refusal
