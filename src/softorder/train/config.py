"""Run configuration: typed sections (``model``, ``optim``, ``run``, ``data``) with flat key names.

With ``yaml12.py`` (YAML 1.2 values) and ``config_files.py`` (files, ``--set``, a benchmark's YAML)
this is the one config reader. Every key has a type and an allowed range (:func:`key` below); a
config is checked as a whole when it is built, so a wrong value is an error naming the key, what
was given and what is allowed, before any data is read or any file written. Values written as
text (``--set lr=1e-4``, ``lr: 3e-3`` in a file) are numbers in every common notation; values of
text keys (paths, names) are taken literally, never parsed. Unknown keys, and keys of another
benchmark, are an error that names the key and lists the valid ones.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch

from softorder.nn.blocks import CORES
from softorder.nn.orderings import DEPTH_NORMS, ORDERINGS, SOFT_NORMS, resolve_depth
from softorder.train.yaml12 import read_yaml

#: Keys ``softorder train --resume RUN --set key=value`` may change: they are applied to the
#: resumed run (and recorded in its config.yaml). Every other key defines the run and is refused.
RESUMABLE = frozenset({
    "steps", "lr", "s_lr", "weight_decay", "lr_warmup", "eval_every", "checkpoint_every", "batch_size",
    "device", "precision", "compile", "channels_last", "threads", "data_dir", "num_workers", "cuda_graphs",
})
#: Keys that say where things are on this machine, not what a run is: a finished run is reused
#: whatever they say (the same trial with ``--data-dir ~/.cache/softorder`` or ``../shared/data``).
LOCATIONS = frozenset({"data_dir"})


@dataclass(frozen=True)
class Rule:
    """Type and range of one key: ``kind`` int | float | bool | str | floats (a list of floats)."""

    kind: str
    optional: bool = False
    ge: float | None = None
    gt: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple[str, ...] = ()

    def allowed(self) -> str:
        parts = [{"int": "an integer", "float": "a number", "bool": "true or false",
                  "str": "text", "floats": "a list of numbers"}[self.kind]]
        if self.choices:
            parts = [f"one of {', '.join(self.choices)}"]
        low = ("[", self.ge) if self.ge is not None else ("(", self.gt)
        high = ("]", self.le) if self.le is not None else (")", self.lt)
        if low[1] is not None and high[1] is not None:
            parts.append(f"in {low[0]}{low[1]:g}, {high[1]:g}{high[0]}")
        elif low[1] is not None:
            parts.append(f"{'>=' if low[0] == '[' else '>'} {low[1]:g}")
        elif high[1] is not None:
            parts.append(f"{'<=' if high[0] == ']' else '<'} {high[1]:g}")
        return " ".join(parts) + (" (or null)" if self.optional else "")


def key(default: Any, kind: str, **rule: Any) -> Any:
    """A config field: its default (a tuple default becomes a fresh list) and its :class:`Rule`."""
    make = {"default_factory": lambda: list(default)} if isinstance(default, tuple) else {"default": default}
    return field(metadata={"rule": Rule(kind, **rule)}, **make)


class Section:
    """A group of config keys, each declared with :func:`key`; values are coerced and checked
    when the section is built (:meth:`check` adds rules over several keys). ``renamed`` maps a key
    name of softorder 0.1 to its name now, for reading saved runs."""

    renamed: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            setattr(self, f.name, _coerce(f.name, getattr(self, f.name), f.metadata["rule"]))
        self.check()

    def check(self) -> None:
        """Rules that involve several keys of the section."""
        return None

    @classmethod
    def key_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]  # type: ignore[arg-type]


@dataclass
class ModelConfig(Section):
    """The net (Sec. 3.3): the ordering of the shared core, its layers, encoders and decoders.
    ``core`` picks the shared layers (the benchmark says which fit its data: ``Benchmark.cores``)."""

    ordering: str = key("soft", "str", choices=ORDERINGS)
    core: str = key("dense", "str", choices=CORES)  # the shared layers (softorder.nn.blocks)
    width: int = key(64, "int", ge=1)  # dense layers' width
    num_layers: int = key(4, "int", ge=1)
    depth: int | None = key(None, "int", optional=True, ge=1)  # None = num_layers; rule: resolve_depth
    encoder: str = key("learned", "str", choices=("learned", "frozen"))  # dense encoders per task
    dropout: float = key(0.5, "float", ge=0, lt=1)
    init: str = key("torch", "str", choices=("torch", "he"))
    temperature: float = key(1.0, "float", gt=0)  # softmax(S / temperature)
    soft_norm: str = key("none", "str", choices=SOFT_NORMS)  # rescale the soft mixture (SoftOrdering)
    depth_norm: str = key("none", "str", choices=DEPTH_NORMS)  # rms: each depth reads unit-RMS rows
    tokens: int = key(4, "int", ge=1)  # transformer core: each row viewed as tokens of width / tokens
    heads: int = key(2, "int", ge=1)  # transformer core: attention heads
    gate_hidden: int = key(0, "int", ge=0)  # gated ordering: hidden units of each gate (0: linear)
    route_tau_start: float = key(2.0, "float", gt=0)  # routed ordering: Gumbel-softmax temperature at step 0
    route_tau_end: float = key(0.1, "float", gt=0)  # ... falling geometrically to this
    route_anneal: float = key(0.5, "float", gt=0, le=1)  # ... reached at this fraction of the steps

    def check(self) -> None:
        resolve_depth(self.ordering, self.num_layers, self.depth)
        tokens, heads = self.tokens, self.heads
        if self.core == "transformer" and (self.width % tokens or (self.width // tokens) % heads):
            raise ValueError(
                f"the transformer core views rows of width {self.width} as {self.tokens} tokens split "
                f"over {self.heads} heads: tokens must divide width and heads must divide width / tokens"
            )


#: The keys that set up one ordering or another, and those each ordering's net reads.
ORDERING_KEYS = ("depth", "temperature", "soft_norm", "s_lr", "gate_hidden", "route_tau_start",
                 "route_tau_end", "route_anneal")
READS: dict[str, frozenset[str]] = {
    "single": frozenset(),
    "permuted": frozenset(),
    "parallel": frozenset({"depth"}),  # a multiple of num_layers: the layers cycled
    "soft": frozenset({"depth", "temperature", "soft_norm", "s_lr"}),
    "gated": frozenset({"depth", "temperature", "soft_norm", "s_lr", "gate_hidden"}),
    "routed": frozenset({"depth", "s_lr", "route_tau_start", "route_tau_end", "route_anneal"}),
}


def unused_keys(flat: dict[str, Any]) -> list[str]:
    """Keys of a flat config (a run's ``config.yaml``) that its net does not read: the transformer
    core's ``tokens`` and ``heads`` on any other core, a dense core's ``width`` and ``encoder`` on a
    conv core, the keys of other orderings (:data:`READS`). They are kept in the file (the config is
    checked and compared as a whole); a report leaves them out."""
    core, reads = flat.get("core", "dense"), READS.get(str(flat.get("ordering")), frozenset())
    unused = [] if core == "transformer" else ["tokens", "heads"]
    if core in ("conv", "resconv"):
        unused += ["width", "encoder"]
    unused += [k for k in ORDERING_KEYS if k not in reads]
    return [k for k in unused if k in flat]


@dataclass
class OptimConfig(Section):
    """Adam on the sum over tasks of each task's mean loss (Sec. 4)."""

    steps: int = key(2000, "int", ge=1)
    batch_size: int = key(32, "int", ge=1)  # per task and process: torchrun with N processes draws N ×
    lr: float = key(1e-3, "float", gt=0)
    s_lr: float | None = key(None, "float", optional=True, gt=0)  # learning rate of S; None = lr
    weight_decay: float = key(0.0, "float", ge=0)
    lr_warmup: int = key(0, "int", ge=0)  # steps of linear learning-rate warm-up from 0 (0: none)


@dataclass
class RunConfig(Section):
    """How the run is carried out and recorded; none of it changes what is learned on one device."""

    eval_every: int = key(100, "int", ge=1)
    checkpoint_every: int = key(500, "int", ge=1)  # a multiple of eval_every
    select: str = key("val_loss", "str", choices=("val_loss", "val_error"))  # picks the kept weights
    device: str = key("cpu", "str")
    precision: str = key("fp32", "str", choices=("fp32", "bf16", "fp16"))  # fp16 adds a GradScaler
    compile: bool = key(False, "bool")  # torch.compile the model for the training step
    channels_last: bool = key(False, "bool")  # conv nets: NHWC activations in the core (CUDA)
    cuda_graphs: bool = key(False, "bool")  # capture the training step once, replay it (train/graphs.py)
    threads: int | None = key(None, "int", optional=True, ge=1)

    def check(self) -> None:
        if self.checkpoint_every % self.eval_every:
            raise ValueError(
                f"checkpoint_every ({self.checkpoint_every}) must be a multiple of "
                f"eval_every ({self.eval_every})"
            )
        _check_device(self.device)
        if self.cuda_graphs:
            if not self.device.startswith("cuda"):
                raise ValueError(
                    f"cuda_graphs captures the training step on a CUDA GPU, not on {self.device!r}; "
                    "set device=cuda or drop cuda_graphs"
                )
            clash = [k for k, on in (("compile", self.compile), ("precision=fp16", self.precision == "fp16"))
                     if on]
            if clash:
                raise ValueError(
                    f"cuda_graphs does not combine with {' and '.join(clash)} (torch.compile's "
                    "reduce-overhead mode and fp16's GradScaler manage their own steps); drop one"
                )


@dataclass
class DataConfig(Section):
    """Where the tasks come from; a benchmark subclasses it with its own keys."""

    data_dir: str | None = key(None, "str", optional=True)
    tasks: int | None = key(None, "int", optional=True, ge=1)  # None = the benchmark's default


#: Each benchmark's model and data sections (``softorder.benchmarks`` registers them).
SECTIONS: dict[str, tuple[type[ModelConfig], type[DataConfig]]] = {}


def register_sections(benchmark: str, model: type[ModelConfig], data: type[DataConfig]) -> None:
    SECTIONS[benchmark] = (model, data)


class Config:
    """Every setting of a run, in typed sections: ``model`` (its own class per benchmark where it
    adds keys), ``optim``, ``run`` and ``data`` (the benchmark's). Built and written with flat keys
    (``Config(benchmark="uci", lr=3e-3)``, YAML files, ``--set``): every key name is unique across
    the sections of a benchmark, and a key of another benchmark is an error that says whose it is."""

    benchmark: str
    seed: int
    model: ModelConfig
    optim: OptimConfig
    run: RunConfig
    data: DataConfig

    def __init__(self, **values: Any) -> None:
        values = dict(values)
        benchmark = values.pop("benchmark", "mnist")
        if not isinstance(benchmark, str) or benchmark not in SECTIONS:
            names = ", ".join(SECTIONS) or "none registered (import softorder.benchmarks)"
            raise ValueError(f"unknown benchmark {benchmark!r}; choose one of {names}")
        self.benchmark = benchmark
        self.seed = _coerce("seed", values.pop("seed", 0), Rule("int", ge=0))
        model, data = SECTIONS[benchmark]
        parts: dict[str, type[Section]] = {"model": model, "optim": OptimConfig, "run": RunConfig,
                                           "data": data}
        given = {name: {k: values.pop(k) for k in list(values) if k in cls.key_names()}
                 for name, cls in parts.items()}
        if values:
            raise ValueError(self._unknown(sorted(map(str, values))))
        for name, cls in parts.items():
            setattr(self, name, cls(**given[name]))

    def _unknown(self, keys: list[str]) -> str:
        theirs = {k: [b for b in SECTIONS if k in keys_of(b)] for k in keys}
        unknown = [k for k, bs in theirs.items() if not bs]
        said = [f"unknown key(s) {', '.join(unknown)}"] if unknown else []
        said += [f"{k} is a key of {', '.join(bs)}, not of {self.benchmark}"
                 for k, bs in theirs.items() if bs]
        return f"{'; '.join(said)}; valid keys: {', '.join(sorted(keys_of(self.benchmark)))}"

    def to_dict(self) -> dict[str, Any]:
        """The flat keys: benchmark, seed, then the model, optim, run and data sections in order."""
        out: dict[str, Any] = {"benchmark": self.benchmark, "seed": self.seed}
        for part in (self.model, self.optim, self.run, self.data):
            out.update(dataclasses.asdict(part))  # type: ignore[call-overload]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config", saved: bool = False) -> Config:
        """A config from flat keys; ``saved``: a run folder's or checkpoint's config, whose keys
        of other benchmarks (softorder 0.1 wrote every key of every benchmark) are dropped."""
        if saved and data.get("benchmark") in SECTIONS:
            model, section = SECTIONS[data["benchmark"]]
            data = dict(data)
            for old, new in {**model.renamed, **section.renamed}.items():
                if old in data and new not in data:
                    data[new] = data.pop(old)
            valid = keys_of(data["benchmark"])
            data = {k: v for k, v in data.items() if k in valid or not any(k in keys_of(b) for b in SECTIONS)}
        try:
            return cls(**data)
        except ValueError as e:
            raise ValueError(f"{source}: {e}" if source != "config" else str(e)) from None

    def replace(self, **changes: Any) -> Config:
        return Config.from_dict({**self.to_dict(), **changes})

    def differences(self, other: Config) -> list[str]:
        """The keys whose values differ from ``other``'s (all of them for another benchmark)."""
        a, b = self.to_dict(), other.to_dict()
        return [k for k in a if k not in b or a[k] != b[k]]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Config) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Config({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"


def keys_of(benchmark: str) -> set[str]:
    """The flat config keys of ``benchmark`` (every section)."""
    model, data = SECTIONS[benchmark]
    sections = (model, OptimConfig, RunConfig, data)
    return {"benchmark", "seed", *(k for section in sections for k in section.key_names())}


# -- values ----------------------------------------------------------------------------------
def _coerce(name: str, value: Any, rule: Rule) -> Any:
    """``value`` as ``rule.kind``, checked against the rule's range; an error says what was given
    and what is allowed."""
    if isinstance(value, str) and rule.kind != "str":
        value = read_yaml(value, f"value of {name}") if value.strip() else value
    if value is None:
        if rule.optional:
            return None
        raise ValueError(f"{name} must be {rule.allowed()}, got null")
    bad = ValueError(f"{name} must be {rule.allowed()}, got {value!r}")
    if rule.kind == "floats":
        if not isinstance(value, list | tuple):
            raise bad
        items = [_number(name, v, "float", rule, bad) for v in value]
        return items
    if rule.kind == "str":
        if not isinstance(value, str):
            raise bad
        if rule.choices and value not in rule.choices:
            raise bad
        return value
    if rule.kind == "bool":
        if not isinstance(value, bool):
            raise bad
        return value
    return _number(name, value, rule.kind, rule, bad)


def _number(name: str, value: Any, kind: str, rule: Rule, bad: ValueError) -> int | float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy numbers are Real too
        raise bad
    if kind == "int":
        if not isinstance(value, numbers.Integral) and not float(value).is_integer():
            raise bad
        value = int(float(value)) if not isinstance(value, numbers.Integral) else int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            raise bad
    if (
        (rule.ge is not None and value < rule.ge)
        or (rule.gt is not None and value <= rule.gt)
        or (rule.lt is not None and value >= rule.lt)
        or (rule.le is not None and value > rule.le)
    ):
        raise bad
    return value


def _check_device(device: str) -> None:
    """The spelling of a device; whether this machine has it is checked when a run starts
    (``distributed.require_device``), so a GPU run's config still reads on a CPU machine."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be cpu, cuda, cuda:N or mps, got {device!r}")


def check_resume(saved: dict[str, Any], cfg: Config, step: int) -> list[str]:
    """The keys in which ``cfg`` changes the checkpoint's config ``saved``; an error naming the
    key when one of them defines the run (model, data, seed, …) or ``steps`` is below ``step``."""
    old = Config.from_dict(saved, source="the checkpoint's config", saved=True)  # device: spelling only
    changed = old.differences(cfg)
    for k in changed:
        if k not in RESUMABLE:
            was, now = old.to_dict().get(k), cfg.to_dict().get(k)
            raise ValueError(
                f"--resume cannot change {k} ({was!r} -> {now!r}): it defines the run; "
                f"start a new run with --out (resumable keys: {', '.join(sorted(RESUMABLE))})"
            )
    if cfg.optim.steps < step:
        raise ValueError(
            f"steps={cfg.optim.steps} is below the {step} steps the run has already trained; "
            f"give steps >= {step}"
        )
    return changed
