"""Process-group helpers for data-parallel training launched by ``torchrun``.

``torchrun --nproc_per_node N -m softorder train CONFIG.yaml`` starts N processes with the
environment variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.
:func:`setup` joins that process group (``nccl`` when the run's device is CUDA, ``gloo`` on CPU) and
binds each process to ``cuda:LOCAL_RANK``. Without those variables (or with ``WORLD_SIZE=1``) every
helper here is a no-op, so single-process training takes exactly the code path it always took.

Only rank 0 touches the run directory; :func:`on_main` runs a function there and hands its result,
or its exception, to every rank so that all ranks fail (or go on) together.
"""

from __future__ import annotations

import gc
import os
import pickle
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

if dist.is_available():
    # Imported now, before any process group exists, on purpose: DistributedDataParallel imports
    # it later (through torch._dynamo), and imported while a group exists its functions bind that
    # group as a default argument, which keeps the group, and gloo's threads, alive until the
    # interpreter exits. See teardown().
    import torch.distributed.nn

T = TypeVar("T")

#: How long a collective waits for the other ranks (rank 0 evaluating while the others wait at a
#: barrier counts). Override with ``SOFTORDER_DIST_TIMEOUT_MIN``.
DEFAULT_TIMEOUT_MIN = 30
_ENV = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def env_world_size() -> int:
    """``WORLD_SIZE`` as set by torchrun (1 when unset)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as e:
        raise ValueError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not an integer") from e


def local_rank() -> int:
    """``LOCAL_RANK``: this process's index on its node (0 when unset)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """Global rank (0 outside a process group)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 outside a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on rank 0, the one process that writes logs, checkpoints and results. Before
    :func:`setup` or after :func:`teardown` this reads ``RANK`` from the environment."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def require_device(device: str | torch.device) -> None:
    """A one-line error when this machine lacks ``device`` (checked before data is read)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"device={device} but no CUDA GPU is visible here; use device=cpu")
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"device={device} but only {n} CUDA GPU(s) are visible (cuda:0..cuda:{n - 1})")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device} but MPS is not available here; use device=cpu")


def select_device(device: str | torch.device) -> torch.device:
    """The device of this process: ``cuda`` becomes ``cuda:LOCAL_RANK`` when torchrun started
    several processes (and is made the current CUDA device); anything else is returned as is."""
    dev = torch.device(device)
    if dev.type != "cuda" or env_world_size() <= 1:
        require_device(dev)
        return dev
    n, lr = torch.cuda.device_count(), local_rank()
    if lr >= n:
        raise ValueError(
            f"LOCAL_RANK {lr} needs GPU {lr} but only {n} CUDA device(s) are visible; start at most "
            f"{n} processes per node (torchrun --nproc_per_node {max(n, 1)})"
        )
    dev = torch.device("cuda", lr)
    torch.cuda.set_device(dev)
    return dev


def setup(device: str | torch.device) -> bool:
    """Join torchrun's process group when ``WORLD_SIZE > 1``. Returns True when this call created
    the group (pass it to :func:`teardown`); False when there is nothing to do or a group exists."""
    if env_world_size() <= 1 or (dist.is_available() and dist.is_initialized()):
        return False
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed support")
    missing = [k for k in _ENV if k not in os.environ]
    if missing:
        raise ValueError(
            f"WORLD_SIZE={env_world_size()} but {', '.join(missing)} not set; launch distributed "
            f"training with torchrun --nproc_per_node N -m softorder train CONFIG.yaml"
        )
    dev = select_device(device)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    minutes = float(os.environ.get("SOFTORDER_DIST_TIMEOUT_MIN", DEFAULT_TIMEOUT_MIN))
    dist.init_process_group(backend, timeout=timedelta(minutes=minutes))
    return True


def teardown(created: bool, finished: bool = True) -> None:
    """Leave the process group if :func:`setup` created it.

    ``finished`` (this rank's run ended normally): first every rank waits at a barrier, so no rank
    tears the group down while another still uses it. After an error there is no barrier (the
    other ranks may never reach it).

    The group must be freed here, not only forgotten: gloo runs collectives on worker threads that
    live as long as the group object. A worker still freeing the tensors of the last collective
    (:func:`on_main`'s broadcast) when the interpreter begins to finalize needs the GIL for it;
    Python then ends the thread inside a C++ destructor, and the process aborts with "terminate
    called without an active exception" after the run succeeded. So the caller first drops what
    holds the group (the DistributedDataParallel model); ``destroy_process_group`` drops torch's
    references, the garbage collection any cycle, and freeing the group joins gloo's threads while
    the interpreter is fully alive.
    """
    if not (created and dist.is_initialized()):
        return
    if finished:
        barrier()
    dist.destroy_process_group()
    gc.collect()


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if not is_distributed():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def all_reduce_mean(t: Tensor, async_op: bool = False) -> Any:
    """Average ``t`` over ranks in place. With ``async_op`` returns a work handle to ``wait()`` on
    (and ``t`` holds the SUM until :func:`finish_mean` divides it)."""
    if not is_distributed():
        return None
    work = dist.all_reduce(t, op=dist.ReduceOp.SUM, async_op=async_op)
    if not async_op:
        t.div_(world_size())
    return work


def finish_mean(t: Tensor, work: Any) -> Tensor:
    """Complete an ``all_reduce_mean(t, async_op=True)``: wait, then divide by the world size."""
    if work is not None:
        work.wait()
        t.div_(world_size())
    return t


def all_gather_object(obj: T) -> list[T]:
    """``obj`` of every rank, in rank order (``[obj]`` in a single process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: T) -> T:
    """Rank 0's ``obj`` on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and return its result on every rank; an exception raised by
    ``fn`` is raised on every rank, so no rank is left waiting for the others."""
    if not is_distributed():
        return fn()
    box: list[Any] = [None]
    if rank() == 0:
        try:
            box[0] = ("ok", fn())
        except Exception as e:  # handed to the other ranks, then raised everywhere
            box[0] = ("error", _picklable(e))
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise value
    return value


def _picklable(e: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        return RuntimeError(f"{type(e).__name__}: {e}")


def rank_seed(seed: int, rank_: int, step: int = 0) -> int:
    """Seed of rank ``rank_``'s global RNG (dropout masks): distinct per rank, per run seed and per
    step it was (re)derived at."""
    return (seed * 1_000_003 + rank_ * 7_919 + step * 104_729) % (2**63 - 1)
