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
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._utils import atomic_write_json, atomic_write_text
from ._folder import now
from ._rows import read_record

log = logging.getLogger("lowres_adapt.study")

HEARTBEAT_SECONDS = 30.0  # a lock holder touches its lock this often
STALE_AFTER_SECONDS = 600.0  # a lock untouched this long has a dead owner (any host)
POLL_SECONDS = 0.2  # how often the parent polls its futures


# --------------------------------------------------------------------------------------------- locks
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _lock_owner(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:  # being written this very moment (or torn by a kill): its age decides
        return {}


def lock_is_stale(path: Path, owner: dict | None = None) -> bool:
    """True when the lock's owner is a dead process on this host, or its heartbeat stopped."""
    owner = _lock_owner(path) if owner is None else owner
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False
    if owner and owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
        return not _pid_alive(owner["pid"])
    return age > STALE_AFTER_SECONDS


class CellLock:
    """The lock of one cell: ``acquire()`` is True when this process holds it (a stale lock is taken
    over); while held, a daemon thread refreshes its heartbeat (the file's mtime)."""

    def __init__(self, path: Path):
        self.path = path
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not lock_is_stale(self.path):
                    return False
                log.warning("taking over the stale lock %s (owner %s)", self.path, _lock_owner(self.path))
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"host": socket.gethostname(), "pid": os.getpid(), "since": now()}, fh)
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
            return True
        return False

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        self._stop.set()
        owner = _lock_owner(self.path)
        if owner and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


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
    if read_record(run_dir, head.get("run_fingerprint")) is not None and (run_dir / "metrics.json").exists():
        return read_record(run_dir, head.get("run_fingerprint"))  # finished after all (the future lied)
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


