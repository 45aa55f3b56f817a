"""The README's usage examples (and those of docs/your-model.md) run as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
GUIDE = README.parent / "docs" / "your-model.md"


def test_readme_python_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    net = namespace["net"]
    assert net.mixing_weights() is not None and net.mixing_weights().shape == (3, 4, 4)


def test_readme_soft_order_example_runs() -> None:
    """The soft-ordered transformer of "Soft-order any blocks" (about 15 lines) trains a step."""
    block = next(b for b in _python_blocks(README) if "SoftOrder" in b)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    core = namespace["core"]
    assert core.S.shape == (3, 4, 4) and core.S.grad is not None
    assert len(block.strip().splitlines()) <= 16


def test_readme_gated_and_routed_example_runs() -> None:
    block = next(b for b in _python_blocks(README) if 'ordering="gated"' in b)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    assert namespace["gated"](namespace["x"], namespace["task"]).shape == (8, 16)
    assert namespace["routed"].core.S.shape == (2, 3, 3)


def test_the_model_guide_examples_run() -> None:
    """docs/your-model.md's python blocks run as written."""
    blocks = _python_blocks(GUIDE)
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, str(GUIDE), "exec"), {})


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_readme_names_the_two_commands() -> None:
    text = README.read_text()
    assert "make demo" in text and "make test" in text


def test_readme_command_summary_lists_every_subcommand() -> None:
    import argparse

    from softorder.cli import build_parser

    block = README.read_text().split("## Command line", 1)[1].split("```", 2)[1]
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = [name for name in sub.choices if f"softorder {name}" not in block]
    assert not missing, f"README's command summary lacks {missing}"
