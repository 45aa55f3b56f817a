"""The README's usage example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    net = namespace["net"]
    assert net.mixing_weights() is not None and net.mixing_weights().shape == (3, 4, 4)


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
