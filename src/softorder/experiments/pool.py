"""The process pool of ``compare`` and ``transfer``, and how it stops.

Ctrl-C reaches every process of the terminal's process group; a cluster scheduler's SIGTERM may
reach the main process alone. Either way the main process decides: its workers ignore SIGINT,
and when the main process leaves the pool on an exception (``KeyboardInterrupt``, which the
command line also raises on SIGTERM, or a failed unit) it cancels the queued units and ends the
running ones at once (SIGTERM, then SIGKILL), instead of waiting for every queued unit to finish.
An ended run keeps its last checkpoint (written atomically), so it resumes; a finished run has
its ``result.json`` and is reused.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")

#: Seconds a worker has to end after SIGTERM before it is killed.
GRACE_S = 5.0
#: Seconds between the main thread's looks for a signal while it waits for the workers.
TICK_S = 0.2


def die_with_parent() -> None:
    """On Linux, end this process when the process that started it dies (a killed ``compare``
    would otherwise leave its workers training, unseen, for minutes)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before the call took effect
            os._exit(1)


def worker_init() -> None:
    """Pool-worker initialiser: die with the parent, leave Ctrl-C to it, and end on SIGTERM."""
    die_with_parent()
    # tqdm's default lock is a multiprocessing semaphore, which a worker ended by SIGTERM would leave
    # to the resource tracker ("leaked semaphore objects"); a worker's bars are its own
    tqdm.set_lock(threading.RLock())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):  # blocked since its start (WorkerPool.submit): a Ctrl-C
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP)  # while it imported is dropped, not a traceback


_STOP = {signal.SIGINT, signal.SIGTERM}


class WorkerPool(ProcessPoolExecutor):
    """A pool whose workers, and helper threads, start with SIGINT and SIGTERM blocked: the main
    thread alone receives them, and a worker ignores Ctrl-C from its first instruction on."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        if not hasattr(signal, "pthread_sigmask"):
            return super().submit(fn, *args, **kwargs)
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP)  # processes and threads start here
        try:
            return super().submit(fn, *args, **kwargs)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextmanager
def worker_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A spawn-context pool of ``workers`` processes that :func:`stop` ends when the body raises."""
    pool = WorkerPool(workers, mp_context=mp.get_context("spawn"), initializer=worker_init)
    try:
        yield pool
    except BaseException:
        stop(pool)
        raise
    pool.shutdown(wait=True)


def completed(futures: Iterable[Future[T]]) -> Iterator[Future[T]]:
    """``futures`` as they complete, like :func:`concurrent.futures.as_completed`, but waking every
    :data:`TICK_S`: a signal that the kernel hands to another thread of this process (torch's, the
    pool's) only sets a flag, which the main thread checks when it wakes, so an endless wait
    would never see Ctrl-C."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=TICK_S, return_when=FIRST_COMPLETED)
        yield from done


def stop(pool: ProcessPoolExecutor) -> None:
    """Cancel the queued units of ``pool`` and end its workers now (SIGTERM, then SIGKILL after
    :data:`GRACE_S`), reaping each, so no worker outlives the call."""
    procs = list((pool._processes or {}).values())
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(GRACE_S)
        if p.is_alive():
            p.kill()
            p.join()
    # the pool's thread sees its workers gone and ends; its queues close, so no semaphore leaks
    pool.shutdown(wait=True, cancel_futures=True)
