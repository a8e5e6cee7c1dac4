"""A study's folder on disk: the check that a folder holds this study (or nothing), and the protocol of one
run folder, which is what makes ``Study.run()`` resumable and safe to kill.

Run folder protocol: a finished run is read back, not redone; any other folder (killed, failed) is cleared
first; ``config.json`` is written first, the trainer's output goes to ``log.txt``, ``metrics.json`` is
written LAST and atomically (its presence means the run finished); a failure writes ``error.txt`` and
``error.json`` instead, with the traceback, and the grid goes on.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import shutil
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._utils import atomic_write_json, atomic_write_text, library_versions
from ..errors import StudyConfigError
from ._inputs import _diff
from ._rows import read_record

log = logging.getLogger(__name__)


def check_folder(out: Path, settings: dict, fingerprint: str) -> dict | None:
    """The folder's existing study.json, after checking it holds this study (or nothing at all)."""
    meta_path = out / "study.json"
    old = None
    if meta_path.exists():
        try:
            old = json.loads(meta_path.read_text(encoding="utf-8"))
        except ValueError:
            old = None
        if old is None:
            raise StudyConfigError(f"{str(meta_path)!r} is not readable JSON; use another output_dir")
        _check_drift_backend(out, (old.get("settings") or {}).get("drift_backend"), settings.get("drift_backend"))
        if old.get("settings_fingerprint") != fingerprint:
            diffs = _diff(old.get("settings") or {}, settings)
            raise StudyConfigError(
                f"output folder {str(out)!r} holds a study with different settings ({diffs}). "
                "Use another output_dir, or run with the same settings to resume it"
            )
    elif out.exists() and any(p.name != "models" for p in out.iterdir()):  # models/: checkpoints built for it
        raise StudyConfigError(f"output folder {str(out)!r} is not empty and holds no study.json; "
                               "use a new or empty folder for a study")
    return old


def _check_drift_backend(out: Path, old: str | None, new: str | None) -> None:
    """Refuses to resume a study whose drift was scored by another language-ID backend: its drift column
    and the new runs' would not be comparable."""
    if old is None or old == new:
        return
    if old == "auto":  # folders of earlier versions: "auto" ran fastText when it was installed
        ran = sorted({str(((read_record(p) or {}).get("drift") or {}).get("backend"))
                      for p in (out / "runs").glob("*")} - {"None"})
        was = f"'auto' (which ran {' and '.join(map(repr, ran)) or 'an unrecorded backend'})"
        fix = "use another output_dir (a study made with 'auto' cannot be resumed under one named backend)"
    else:
        was = repr(old)
        fix = f"pass drift_backend={old!r} to resume it, or use another output_dir"
    raise StudyConfigError(f"output folder {str(out)!r} holds a study whose drift was scored with backend {was}, "
                           f"but this study runs {new!r}; {fix}")


def run_in_folder(run_dir: Path, head: dict, config: dict, *, body: Callable[[], tuple[Any, Any, dict]],
                  measure: Callable[[Any, Any], dict], retry_failed: bool = True,
                  keep_models: bool = True) -> dict:
    """Returns the run's record: read back when finished, else made by ``body`` then ``measure``.

    ``body()`` loads or trains and returns ``(model, tokenizer, train_metrics)``; its output goes to the
    run's ``log.txt``. ``measure(model, tokenizer)`` returns the record's measurement keys (test,
    reference, drift, ...). ``config`` is what ``config.json`` adds to ``head``.
    """
    old = read_record(run_dir, head["run_fingerprint"])
    if old is not None and (old.get("status") == "ok" or not retry_failed):
        return old
    if run_dir.exists():  # a killed or failed attempt: start clean
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    atomic_write_json(run_dir / "config.json", {**head, **config, "library_versions": library_versions(),
                                                "started_at": now()})
    common = {"split_fingerprint": config.get("split_fingerprint"),
              "settings_fingerprint": config.get("settings_fingerprint")}
    t0 = time.perf_counter()
    model = tokenizer = None
    try:
        # The trainer's own progress bars and log lines go to the run's log.txt: the study's bar is the one
        # progress display, and the log stays with the run for reading later.
        with open(run_dir / "log.txt", "w", encoding="utf-8") as fh, \
                contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
            model, tokenizer, train_metrics = body()
        measured = measure(model, tokenizer)
        if not keep_models:
            remove_weights(run_dir / "train")
        record = {**head, "status": "ok", **common, "train": train_metrics, **measured,
                  "timings": {"run_seconds": time.perf_counter() - t0}, "library_versions": library_versions(),
                  "finished_at": now()}
        atomic_write_json(run_dir / "metrics.json", record)  # LAST: its presence means finished
        return record
    except Exception as e:  # recorded in the run folder; the grid goes on
        tb = traceback.format_exc()
        message = f"{type(e).__name__}: {e}"
        log.warning("run %s failed: %s", head["run_id"], message)
        record = {**head, "status": "failed", "error": message, "traceback": tb, **common,
                  "timings": {"run_seconds": time.perf_counter() - t0}, "finished_at": now()}
        atomic_write_text(run_dir / "error.txt", f"{message}\n\n{tb}")
        atomic_write_json(run_dir / "error.json", record)
        return record
    finally:
        del model, tokenizer
        free_memory()


def remove_weights(folder: Path) -> None:
    """Deletes model weights and checkpoints under ``folder`` (``keep_models=False``), keeping the rest."""
    for pattern in ("*.safetensors", "*.bin", "*.pt", "checkpoint-*"):
        for p in folder.rglob(pattern):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists():
                p.unlink()


def free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
