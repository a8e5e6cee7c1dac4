"""Running a study's cells through an executor: any object with ``submit(fn, *args)`` returning a future
with ``.done()`` and ``.result()`` (``concurrent.futures.ProcessPoolExecutor``, dask's
``Client.get_executor()``, submitit's ``AutoExecutor``, mpi4py's ``MPIPoolExecutor``).

Each cell runs in its worker and writes its own run folder (the protocol of ``_folder``); the parent
only submits, polls with ``.done()`` (some of these executors do not support
``concurrent.futures.as_completed``) and collects the records.

Two ``run()``s may share a folder (two SLURM jobs, a rerun while the first still works): a cell runs
under a lock file ``locks/<run id>.lock`` created with ``O_EXCL`` and holding the owner's host, pid and a
heartbeat. A second owner waits for the lock and then reads the finished record back, so no cell is done
twice. A lock whose owner is a dead process on this host, or whose heartbeat stopped (an owner on
another host that died), is stale and taken over.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._utils import FileLock as CellLock
from .._utils import atomic_write_json, atomic_write_text, lock_is_stale
from ._folder import now
from ._rows import read_record

log = logging.getLogger("lowres_adapt.study")

POLL_SECONDS = 0.2  # how often the parent polls its futures


# --------------------------------------------------------------------------------------------- one cell
def run_cell(step: Callable[..., dict], run_dir: str, lock_path: str, fingerprint: str, args: tuple,
             threads: int | None = None) -> dict:
    """Returns the cell's record; runs in the worker. ``step(*args)`` runs the cell under its lock (the
    run-folder protocol inside); an owner already at work is waited for and its record read back.
    ``threads``: torch's CPU threads, as in the parent (dask sets 1 per worker; a CPU sum reduced over
    another number of threads differs in the last bits, and the numbers must equal a serial run's)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    lock = CellLock(Path(lock_path))
    waited = False
    while not lock.acquire():
        waited = True
        time.sleep(1.0)
    try:
        if waited:  # another run() did this cell while we waited: its record, ok or failed, is the answer
            rec = read_record(Path(run_dir), fingerprint)
            if rec is not None:
                return rec
        return step(*args)
    finally:
        lock.release()


def record_lost_cell(run_dir: Path, lock_path: Path, head: dict, error: BaseException) -> dict:
    """Returns (and writes as ``error.json``) the failure record of a cell whose worker died or whose
    future raised; the next ``run()`` retries it. A folder another live owner works in is left alone."""
    message = f"{type(error).__name__}: {error}" if str(error) else f"{type(error).__name__} (the worker died)"
    record = {**head, "status": "failed", "error": f"worker lost: {message}", "traceback": None,
              "timings": {}, "finished_at": now()}
    finished = read_record(run_dir, head.get("run_fingerprint"))
    if finished is not None and finished.get("status") == "ok":  # it finished after all (the future lied)
        return finished
    if lock_path.exists() and not lock_is_stale(lock_path):
        return record  # someone alive works on it: report, do not touch
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "error.txt", record["error"] + "\n")
    atomic_write_json(run_dir / "error.json", record)
    with contextlib.suppress(FileNotFoundError):
        if lock_is_stale(lock_path):
            lock_path.unlink()
    return record


def run_all(executor: Any, cells: list[tuple[str, Path, dict, Callable, tuple]], *, locks: Path,
            on_done: Callable[[str, dict], None] | None = None) -> dict[str, dict]:
    """Returns ``{run id: record}`` after running every cell through ``executor``.

    ``cells`` holds ``(run id, run folder, head, step, args)``. Futures are polled with ``.done()``; a future that raises (a
    dead worker, a cancelled job) is recorded as a failed run and the others go on.
    """
    _warn_if_forking(executor)
    threads = None
    if "torch" in sys.modules:
        threads = sys.modules["torch"].get_num_threads()
    pending: dict[str, tuple[Any, Path, dict]] = {}
    out: dict[str, dict] = {}
    for run_id, run_dir, head, step, args in cells:
        lock_path = locks / f"{run_id}.lock"
        try:
            fut = executor.submit(run_cell, step, str(run_dir), str(lock_path), head["run_fingerprint"], args,
                                  threads)
        except Exception as e:  # noqa: BLE001 - a broken pool refuses new work: those cells fail, and say why
            out[run_id] = record_lost_cell(run_dir, lock_path, head, e)
            if on_done:
                on_done(run_id, out[run_id])
            continue
        pending[run_id] = (fut, run_dir, head)
        if fut.done():  # the serial executor: collect at once, so progress shows cell by cell
            _collect(pending, run_id, out, locks, on_done)
    while pending:
        finished = [rid for rid, (fut, _, _) in pending.items() if fut.done()]
        if not finished:
            time.sleep(POLL_SECONDS)
            continue
        for run_id in finished:
            _collect(pending, run_id, out, locks, on_done)
    return out


def _collect(pending: dict, run_id: str, out: dict, locks: Path, on_done) -> None:
    fut, run_dir, head = pending.pop(run_id)
    try:
        rec = fut.result()
    except BaseException as e:  # noqa: BLE001 - the worker died (BrokenProcessPool, KilledWorker, ...)
        if isinstance(e, KeyboardInterrupt):
            raise
        log.warning("run %s: its worker failed: %s: %s", run_id, type(e).__name__, e)
        rec = record_lost_cell(run_dir, locks / f"{run_id}.lock", head, e)
    out[run_id] = rec
    if on_done:
        on_done(run_id, rec)


def _warn_if_forking(executor: Any) -> None:
    """A process pool that forks after this process used torch hangs (OpenMP) or loses CUDA: say so."""
    import warnings
    from concurrent.futures import ProcessPoolExecutor

    ctx = getattr(executor, "_mp_context", None)
    if (isinstance(executor, ProcessPoolExecutor) and ctx is not None and ctx.get_start_method() == "fork"
            and "torch" in sys.modules):
        warnings.warn("the process pool forks its workers after torch was loaded here; a forked worker can hang "
                      "in OpenMP or lose CUDA. Use ProcessPoolExecutor(n, mp_context=multiprocessing."
                      "get_context('spawn')) or lowres_adapt.study.make_executor('processes', workers=n)",
                      RuntimeWarning, stacklevel=4)


class InlineExecutor:
    """The serial executor: ``submit`` runs the function at once and returns a finished future.

    Example::

        >>> InlineExecutor().submit(pow, 2, 3).result()
        8
    """

    def submit(self, fn: Callable, *args: Any):
        from concurrent.futures import Future

        fut: Future = Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - handed to the caller through the future, as a pool does
            if isinstance(e, KeyboardInterrupt):
                raise
            fut.set_exception(e)
        return fut


