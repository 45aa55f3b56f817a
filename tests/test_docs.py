"""A test keeps every command in the docs valid (README.md and docs/*.md).

Nothing runs; everything is parsed. Every ``softorder …`` line of a fenced ``bash`` block and every
inline ``softorder …`` span must parse with the real command line (:func:`softorder.cli.build_parser`,
flags spelled out in full), every ``--set key=value`` must name a config key whose value the config
accepts, every ``scripts/``, ``src/`` or ``tests/`` path named must exist, and every relative
Markdown link (and its ``#anchor``) must point at something. Placeholders written in capitals
(``RUN_DIR``, ``DATA``, ``N``, ``KEY=VALUE``) and shell variables (``$S``) stand for dummy values;
``[optional]`` parts are kept, ``[flags]`` and ``...`` are dropped, and ``a|b|c`` is each of a, b
and c. An inline span may name a command without its required arguments ("``softorder compare``
hands its runs to …"); a ``bash`` block may not.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import itertools
import re
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from softorder.benchmarks import benchmark_config
from softorder.cli import build_parser
from softorder.data.download import DATASETS
from softorder.train.config import SECTIONS, Config, keys_of
from softorder.train.config_files import parse_overrides
from softorder.train.yaml12 import read_yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))

#: The placeholders the docs use, and the dummy value each stands for when a command is parsed.
PLACEHOLDERS = {
    "DIR": "runs/x", "RUN_DIR": "runs/x", "RUN": "runs/x", "RUN_OR_COMPARE_DIR": "runs/x",
    "DATA": "data", "CONFIG.yaml": "my.yaml", "BENCHMARK": "uci", "COMMAND": "train",
    "N": "5", "T": "4", "K": "5", "S": "0",
    "KEY=VALUE": "steps=100", "key=value": "steps=100",
}
_SHELL_VAR = re.compile(r"\$\{?\w+\}?")
_ALTERNATIVES = re.compile(r"[\w.-]+(?:\|[\w.-]+)+")
_FENCE = re.compile(r"^\s*```")
_INLINE = re.compile(r"`((?:softorder|python\s+scripts/)[^`]*)`")
_SET_SPAN = re.compile(r"`--set ([^`]+)`")
_REPO_PATH = re.compile(r"(?<![\w./-])(?:scripts|src|tests)/[\w./-]*[\w/]")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


@dataclasses.dataclass(frozen=True)
class Command:
    """One command of a document: where it is and its words (the shell's split, comments dropped)."""

    where: str
    words: tuple[str, ...]
    inline: bool = False


# -- finding commands ------------------------------------------------------------------------------
def fenced(text: str) -> Iterator[tuple[str, int, list[str]]]:
    """(language, first line number, lines) of every fenced block."""
    lines, i = text.splitlines(), 0
    while i < len(lines):
        if _FENCE.match(lines[i]):
            lang, start, i = lines[i].strip()[3:].strip(), i + 1, i + 1
            while i < len(lines) and not _FENCE.match(lines[i]):
                i += 1
            yield lang, start + 1, lines[start:i]
        i += 1


def prose(text: str) -> str:
    """``text`` with every fenced block blanked out (line numbers kept)."""
    lines = text.splitlines()
    for _, start, block in fenced(text):
        lines[start - 1 : start - 1 + len(block)] = [""] * len(block)
    return "\n".join(lines)


def commands(text: str, name: str) -> Iterator[Command]:
    """Every command line of the ``bash`` blocks (continuations joined) and every inline command."""
    for lang, start, block in fenced(text):
        if lang not in ("bash", "sh", "shell"):
            continue
        logical: list[tuple[int, str]] = []
        for n, line in enumerate(block, start):
            if logical and logical[-1][1].endswith("\\"):
                logical[-1] = (logical[-1][0], logical[-1][1][:-1] + " " + line)
            else:
                logical.append((n, line))
        for n, line in logical:
            yield Command(f"{name}:{n}", tuple(_split(line)))
    body = prose(text)
    for m in _INLINE.finditer(body):
        line = body.count("\n", 0, m.start()) + 1
        yield Command(f"{name}:{line}", tuple(_split(m.group(1))), inline=True)


def _split(line: str) -> list[str]:
    try:
        return shlex.split(" ".join(line.split()), comments=True)
    except ValueError as e:  # an unbalanced quote
        return ["<unparsable>", str(e), line]


def softorder_argvs(words: tuple[str, ...]) -> list[list[str]]:
    """The argument lists of ``softorder`` (or ``-m softorder``) in ``words``, one per alternative;
    none when the line runs something else."""
    starts = [i for i, w in enumerate(words) if w == "softorder" and (
        words[i - 1 : i] == ("-m",) or all("=" in v and not v.startswith("-") for v in words[:i]))]
    if not starts:  # neither `softorder …`, `VAR=1 softorder …` nor `… -m softorder …`
        return []
    options: list[list[str]] = []
    for word in words[starts[0] + 1 :]:
        if word.startswith("[-"):
            word = word[1:]
        if word.endswith("]") and "[" not in word:
            word = word[:-1]
        if word in ("", "...", "…", "[flags]"):
            continue
        options.append(word.split("|") if _ALTERNATIVES.fullmatch(word) else [word])
    return [[_dummy(w) for w in argv] for argv in itertools.product(*options)]


def _dummy(word: str) -> str:
    name, sep, value = word.partition("=")
    if word in PLACEHOLDERS:
        return PLACEHOLDERS[word]
    if sep and value in PLACEHOLDERS:
        word = f"{name}={PLACEHOLDERS[value]}"
    return _SHELL_VAR.sub("0", word)


# -- checking them ---------------------------------------------------------------------------------
@cache
def parser() -> argparse.ArgumentParser:
    """The real parser, refusing abbreviated flags: the docs spell every flag out."""
    root = build_parser()
    todo = [root]
    while todo:
        p = todo.pop()
        p.allow_abbrev = False
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())
    return root


def config_keys() -> set[str]:
    return set().union(*(keys_of(b) for b in SECTIONS))


def defaults_with(changes: dict[str, object]) -> Config:
    """The defaults of the first benchmark that has every key of ``changes``, with them applied."""
    name = next((b for b in SECTIONS if set(changes) <= keys_of(b)), "mnist")
    return Config.from_dict({**Config(benchmark=name).to_dict(), **changes})


def parse(argv: list[str]) -> argparse.Namespace | None:
    """``parse_args(argv)``, None for ``--help``; an argparse error becomes an AssertionError with its
    message."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return parser().parse_args(argv)
        except SystemExit as e:
            if e.code == 0:  # --help, --version
                return None
            raise AssertionError(err.getvalue().strip().splitlines()[-1]) from None


def check_config(args: argparse.Namespace) -> None:
    """The command's ``--set`` keys exist, and with its other config flags they make a valid config
    of its benchmark (its YAML, ``--quick``), as the command would build it."""
    overrides = list(getattr(args, "overrides", None) or [])
    unknown = [o for o in overrides if o.partition("=")[0].strip() not in config_keys()]
    assert not unknown, f"--set of unknown config key(s): {', '.join(unknown)}"
    for key in ("data_dir", "tasks", "test_fraction", "image_size") if args.command == "compare" else ():
        if getattr(args, key, None) is not None:
            overrides.append(f"{key}={getattr(args, key)}")
    if args.command == "data":
        assert args.name in DATASETS, f"no dataset {args.name!r}; data download knows {sorted(DATASETS)}"
    if args.command == "compare" and not args.config:
        named = args.benchmark  # the shipped YAML of a benchmark (an unknown one fails here)
    elif args.command == "train" and not args.resume and not str(args.config).endswith((".yaml", ".yml")):
        named = args.config
    else:  # a YAML of one's own, a resumed run, adapt: the defaults
        named = None
    if named:  # compare checks the command line against the orderings it runs
        runs = args.orderings.split(",") if args.command == "compare" else None
        benchmark_config(named, args.quick, overrides, orderings=runs)
        return
    defaults_with(dict(parse_overrides(overrides)))


def check_recipe(words: tuple[str, ...]) -> None:
    """``python scripts/recipe.py BENCHMARK``: its ``--set`` and ``--grid`` settings are valid keys
    and values of the benchmark's config, each grid setting applied as the script applies it."""
    sets = [value for flag, value in itertools.pairwise(words) if flag == "--set"]
    grid: list[dict[str, object]] = []
    if "--grid" in words:
        items = itertools.takewhile(lambda w: not w.startswith("--"), words[words.index("--grid") + 1 :])
        grid = [read_yaml(item.partition(":")[2], item) or {} for item in items]
    keys = [s.partition("=")[0] for s in sets] + [k for setting in grid for k in setting]
    unknown = sorted(set(keys) - config_keys())
    assert not unknown, f"unknown config key(s) {', '.join(unknown)}"
    cfg, _ = benchmark_config(words[2], "--quick" in words, sets)
    for setting in grid:
        cfg.replace(**setting)


def check_set_span(text: str) -> None:
    """An inline ``--set key=value``: a config key, and a value it accepts (on the defaults)."""
    key, _, value = _dummy(text.split()[0]).partition("=")
    assert key in config_keys(), f"unknown config key {key}"
    defaults_with({key: value})


def command_problems(text: str, name: str) -> tuple[list[str], int]:
    """Problems of every command in ``text``, and how many ``softorder`` invocations it has."""
    problems, count = [], 0
    for cmd in commands(text, name):
        try:
            if cmd.words[:1] == ("<unparsable>",):
                raise AssertionError(f"shell syntax: {cmd.words[1]}")
            if cmd.words[:2] == ("python", "scripts/recipe.py"):
                check_recipe(cmd.words)
            for argv in softorder_argvs(cmd.words):
                count += 1
                try:
                    args = parse(argv)
                except AssertionError as e:
                    if cmd.inline and _mention(str(e), argv):
                        continue
                    raise
                if args is not None:
                    check_config(args)
        except (AssertionError, ValueError) as e:
            problems.append(f"{cmd.where}: {' '.join(cmd.words)}\n    -> {e}")
    body = prose(text)
    for m in _SET_SPAN.finditer(body):
        try:
            check_set_span(m.group(1))
        except (AssertionError, ValueError) as e:
            line = body.count("\n", 0, m.start()) + 1
            problems.append(f"{name}:{line}: --set {m.group(1)}\n    -> {e}")
    return problems, count


def _mention(error: str, argv: list[str]) -> bool:
    """Whether an inline span is a mention (``softorder compare``, ``softorder train --resume``),
    not a whole command: only required arguments are missing."""
    return "the following arguments are required" in error or (
        "expected one argument" in error and argv[-1].startswith("-")
    )


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for m in re.finditer(r"^#{1,6} +(.+?) *$", prose(text), flags=re.M):
        s = slug(m.group(1))
        out.add(f"{s}-{seen[s]}" if s in seen else s)
        seen[s] = seen.get(s, 0) + 1
    return out


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def link_problems(text: str, path: Path) -> list[str]:
    """Relative links that point nowhere, repository paths that do not exist."""
    problems, body, name = [], prose(text), _shown(path)
    for m in _LINK.finditer(body):
        target = m.group(1)
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        line = body.count("\n", 0, m.start()) + 1
        if not dest.exists():
            problems.append(f"{name}:{line}: link to {target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            problems.append(f"{name}:{line}: link to {target}: no heading #{anchor} in {dest.name}")
    for m in _REPO_PATH.finditer(text):
        if not (ROOT / m.group(0)).exists():
            line = text.count("\n", 0, m.start()) + 1
            problems.append(f"{name}:{line}: {m.group(0)} does not exist")
    return problems


# -- the tests -------------------------------------------------------------------------------------
def test_every_command_in_the_docs_parses() -> None:
    problems, count = [], 0
    for doc in DOCS:
        found, n = command_problems(doc.read_text(), _shown(doc))
        problems += found
        count += n
    assert not problems, "commands in the docs that the command line refuses:\n" + "\n".join(problems)
    assert count >= 40, f"only {count} softorder commands found in the docs: is the extraction broken?"


def test_every_link_and_path_in_the_docs_exists() -> None:
    problems = [p for doc in DOCS for p in link_problems(doc.read_text(), doc)]
    assert not problems, "\n".join(problems)


def test_the_cli_reference_names_every_flag_and_config_key() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    missing = sorted(k for k in config_keys() if f"`{k}`" not in text)
    todo, flags = [parser()], set()
    while todo:
        p = todo.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())
            elif action.help != argparse.SUPPRESS:
                flags |= {s for s in action.option_strings if s not in ("-h", "--help", "--version")}
    missing += sorted(f for f in flags if not re.search(rf"{re.escape(f)}(?![\w-])", text))
    assert not missing, f"docs/cli.md does not name {', '.join(missing)}"


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ("```bash\nsoftorder compare mnist --trails 5\n```", "unrecognized arguments: --trails"),
        ("```bash\nsoftorder train uci --quic   # abbreviated\n```", "unrecognized arguments: --quic"),
        ("```bash\nsoftorder trian uci\n```", "invalid choice: 'trian'"),
        ("```bash\nsoftorder train uci \\\n  --set lrr=1e-3\n```", "unknown config key(s): lrr=1e-3"),
        ("```bash\nsoftorder compare uci --set steps=1.5\n```", "steps must be an integer >= 1"),
        ("```bash\nsoftorder compare mnst --quick\n```", "unknown benchmark 'mnst'"),
        ("`softorder experiment planted|fit-rnd [--quick]`", "invalid choice: 'fit-rnd'"),
        ("```bash\nsoftorder adapt RUN_DIR --new-tasks N --shot 5\n```", "unrecognized arguments: --shot"),
        ("see `python scripts/recipe.py uci --grid 'a:{dropot: 0.1}' --out x`", "dropot"),
        ("`python scripts/recipe.py uci --grid 'a:{dropout: 1.5}' --out x`", "dropout must be"),
        ("with `--set sof_norm=l2` for soft", "unknown config key sof_norm"),
        ("with `--set soft_norm=l3` for soft", "soft_norm must be one of none, l2"),
        ("```bash\nsoftorder data download omniglott\n```", "no dataset 'omniglott'"),
        ("```bash\nOMP_NUM_THREADS=1 softorder bench --dtype fp64\n```", "invalid choice: 'fp64'"),
        ("```bash\ntorchrun --nproc_per_node 2 -m softorder train --resum runs/x\n```", "--resum"),
    ],
)
def test_the_checks_catch_a_wrong_command(doc: str, expected: str) -> None:
    problems, _ = command_problems(doc, "doc.md")
    assert len(problems) == 1 and expected in problems[0], problems


def test_the_checks_catch_a_broken_link_or_path(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# A heading\n")
    doc = tmp_path / "doc.md"
    text = "[a](other.md#a-heading) [b](other.md#nope) [c](missing.md) run `scripts/nothing.py`\n"
    problems = link_problems(text, doc)
    assert len(problems) == 3, problems
    assert "#nope" in problems[0] and "missing.md" in problems[1] and "scripts/nothing.py" in problems[2]


def _row(text: str, flag: str) -> str:
    """The docs/cli.md table row of ``flag`` (the first), backticks dropped."""
    found = re.search(rf"^\| `{re.escape(flag)}[ `,].*$", text, re.MULTILINE)
    assert found, f"docs/cli.md has no table row for {flag}"
    return found.group(0).replace("`", "")


def test_the_cli_reference_says_what_the_code_does() -> None:
    """What help generates from the code (defaults, limits, which benchmarks a flag serves) is what
    docs/cli.md says, and where the configs live is where they are."""
    from softorder import bench, benchmarks
    from softorder.cli import key_help, tasks_limits, vectorised

    text = (ROOT / "docs" / "cli.md").read_text()
    assert f"on for {', '.join(vectorised())})" in _row(text, "--vectorise")
    assert tasks_limits() in _row(text, "--tasks")
    for flag, key in (("--test-fraction", "test_fraction"), ("--image-size", "image_size")):
        owners = key_help(key, "").split(":")[0]
        assert _row(text, flag).split("| ")[2].startswith(f"{owners}:"), flag
    workloads = _row(text, "--workloads")
    assert all(f" {w}" in workloads for w in bench.WORKLOADS), workloads
    cpu = [w for w in bench.WORKLOADS if w not in bench.CPU_DEFAULT.split(",")]
    assert f"default on the CPU: all but {', '.join(cpu)}" in workloads
    folder = benchmarks.get("mnist").config_path.parent.relative_to(ROOT / "src" / "softorder").as_posix()
    assert f"Configs are YAML files in `src/softorder/{folder}/`" in text
    help_ = {a.dest: a.help for a in parser()._subparsers._group_actions[0].choices["transfer"]._actions}
    assert " ".join(str(help_["workers"]).split()) in _row(text, "--workers N")


def test_help_is_plain_text_for_users() -> None:
    """``--help`` of every command: no reST markup, no notes to developers, no internal names."""
    todo = [parser()]
    while todo:
        p = todo.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())
        shown = p.format_help()
        for bad in ("``", ":func:", ":class:", "**", "(Over ", "adapt_overrides"):
            assert bad not in shown, f"{p.prog} --help shows {bad!r}"
