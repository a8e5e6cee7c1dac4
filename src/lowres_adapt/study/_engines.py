"""The executors the ``lowres-adapt study --executor`` option names, built from a few options: ``local``
(serial, in this process), ``processes`` (a local process pool, optionally one GPU set per worker),
``dask`` (a dask.distributed cluster, or a LocalCluster when no scheduler address is given) and
``slurm`` (submitit's ``AutoExecutor``). dask and submitit come with ``pip install lowres-adapt[cluster]``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import StudyConfigError
from ._executor import InlineExecutor

EXECUTORS = ("local", "processes", "dask", "slurm")


def _assign_gpus(queue, gpus_per_cell: int) -> None:
    """Process-pool initializer: worker k takes slot k and sees only its GPUs (before torch starts CUDA)."""
    k = queue.get()
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(k * gpus_per_cell + j) for j in range(gpus_per_cell))


def _need(module: str, what: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise StudyConfigError(f"--executor {what} needs {module.split('.')[0]}: pip install 'lowres-adapt[cluster]'"
                               ) from None


def _minutes(time_limit: str | int | None) -> int | None:
    """'90', 90, '1:30' (h:mm) or '1:30:00' (h:mm:ss) -> minutes."""
    if time_limit is None:
        return None
    if isinstance(time_limit, int):
        return time_limit
    parts = [int(p) for p in str(time_limit).split(":")]
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        return parts[0] * 60 + parts[1]
    if len(parts) == 3:
        return parts[0] * 60 + parts[1] + (1 if parts[2] else 0)
    raise StudyConfigError(f"time limit {time_limit!r}: use minutes, 'h:mm' or 'h:mm:ss'")


@contextlib.contextmanager
def make_executor(kind: str = "local", *, workers: int | None = None, gpus_per_cell: int = 0,
                  scheduler_address: str | None = None, partition: str | None = None,
                  time_limit: str | int | None = None, folder: str | os.PathLike = "runs/slurm",
                  **options: Any) -> Iterator[Any]:
    """Yields an executor for ``Study.run(executor=...)`` and shuts it down on exit.

    - ``"local"``: the cells one after another in this process.
    - ``"processes"``: a ``ProcessPoolExecutor`` of ``workers`` spawned processes; with
      ``gpus_per_cell=g``, worker k sees GPUs ``k*g .. k*g+g-1`` (``CUDA_VISIBLE_DEVICES``).
    - ``"dask"``: ``Client(scheduler_address).get_executor()``, or a ``LocalCluster`` of ``workers``
      processes when no address is given; ``gpus_per_cell=g`` asks each cell for ``{"GPU": g}`` of the
      workers' resources (start them with ``--resources GPU=1``).
    - ``"slurm"``: submitit's ``AutoExecutor`` (one SLURM job per cell) with ``gpus_per_node=g``,
      ``slurm_partition``, ``timeout_min`` from ``time_limit`` and its logs under ``folder``; ``options``
      go to ``update_parameters``.

    Example::

        >>> from lowres_adapt.study import make_executor
        >>> with make_executor("local") as ex:
        ...     ex.submit(max, 2, 5).result()
        5
    """
    if kind not in EXECUTORS:
        from .._utils import did_you_mean

        raise StudyConfigError(f"executor {kind!r} is not known{did_you_mean(kind, EXECUTORS)}; use one of {EXECUTORS}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise StudyConfigError(f"workers must be a positive integer, got {workers!r}")
    if not isinstance(gpus_per_cell, int) or gpus_per_cell < 0:
        raise StudyConfigError(f"gpus_per_cell must be a non-negative integer, got {gpus_per_cell!r}")
    if kind == "local":
        yield InlineExecutor()
    elif kind == "processes":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawned, never forked: a child forked after the parent used torch (the base rows run here) hangs
        # in OpenMP, and one forked after CUDA started cannot use the GPU
        ctx = multiprocessing.get_context("spawn")
        if gpus_per_cell:
            n = workers or max(1, _gpu_count() // gpus_per_cell)
            queue = ctx.Queue()
            for k in range(n):
                queue.put(k)
            pool = ProcessPoolExecutor(n, mp_context=ctx, initializer=_assign_gpus, initargs=(queue, gpus_per_cell))
        else:
            pool = ProcessPoolExecutor(workers or os.cpu_count() or 1, mp_context=ctx)
        with pool:
            yield pool
    elif kind == "dask":
        distributed = _need("distributed", "dask")
        resources = {"GPU": gpus_per_cell} if gpus_per_cell else None
        if scheduler_address:
            client = distributed.Client(scheduler_address)
            cluster = None
        else:
            # dask starts workers with OMP_NUM_THREADS=1 (and MKL's, OpenBLAS'); a worker whose math libraries
            # start with another thread count than this process reduces sums in another order, so the
            # numbers would differ from a serial run's in the last bits
            threads = str(_torch_threads())
            env = {k: threads for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
            cluster = distributed.LocalCluster(n_workers=workers or 2, threads_per_worker=1, processes=True,
                                               dashboard_address=None, env=env,
                                               resources={"GPU": 1} if gpus_per_cell else None)
            client = distributed.Client(cluster)
        try:
            yield client.get_executor(resources=resources) if resources else client.get_executor()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    else:
        submitit = _need("submitit", "slurm")
        ex = submitit.AutoExecutor(folder=str(Path(folder)))
        params: dict[str, Any] = {}
        if gpus_per_cell:
            params["gpus_per_node"] = gpus_per_cell
        if partition:
            params["slurm_partition"] = partition
        minutes = _minutes(time_limit)
        if minutes:
            params["timeout_min"] = minutes
        if workers:
            params["slurm_array_parallelism"] = workers
        ex.update_parameters(**params, **options)
        yield ex


def _torch_threads() -> int:
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:  # pragma: no cover
        return os.cpu_count() or 1


def _gpu_count() -> int:
    try:
        import torch

        return max(1, torch.cuda.device_count())
    except ImportError:  # pragma: no cover
        return 1
