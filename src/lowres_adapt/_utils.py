"""Small private helpers shared by several modules (versions, seeding, atomic file writes, lock files)."""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import os
import platform
import socket
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries whose behaviour changes results."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("lowres-adapt", "torch", "transformers", "peft", "bitsandbytes", "accelerate",
                 "datasets", "tokenizers", "numpy", "scipy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


# Attributes that hold a model's context length, in the order transformers' configs use them.
_CONTEXT_ATTRS = ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length", "seq_length")


def config_context_length(config: Any) -> int | None:
    """The context length a model config states, or None: the text model's first, as lm-eval's
    ``resolve_max_length`` reads it (composite configs such as Gemma 3, Mistral 3, Qwen2-VL or LLaVA hold
    it under ``text_config`` only, or hold another modality's length at the top level)."""
    configs = [config]
    get_text_config = getattr(config, "get_text_config", None)
    if callable(get_text_config):
        configs.insert(0, get_text_config(decoder=True))
    for cfg in configs:
        for attr in _CONTEXT_ATTRS:
            value = getattr(cfg, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return int(value)
    return None


def refuse_unknown_fields(what: str, data: Iterable[str], known: Iterable[str]) -> None:
    """Raises ``ValueError`` naming the keys of ``data`` that are not in ``known`` (with did-you-mean
    hints) and the known ones; ``what`` names the thing (``"LoRA"``, ``"Stage"``)."""
    known = set(known)
    unknown = sorted(set(data) - known)
    if unknown:
        hints = "".join(did_you_mean(k, known) for k in unknown)
        raise ValueError(f"unknown {what} field(s) {unknown}{hints}; known fields: {sorted(known)}")


def did_you_mean(value: str, known: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when ``value`` is close to one of ``known``, else ''."""
    close = difflib.get_close_matches(str(value), [str(k) for k in known], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented UTF-8 JSON (non-ASCII kept readable)."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    try:  # numpy scalars and arrays
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def token_id(value: Any, where: str) -> int:
    """``value`` as a token id: ints (Python, numpy, 0-d integer tensors) pass through ``operator.index``;
    a float (even 3.0), a bool or a string raises ``TypeError`` naming ``where`` instead of being truncated."""
    import operator

    if isinstance(value, bool):
        raise TypeError(f"{where} is {value!r}, a bool; token ids are integers")
    try:
        return operator.index(value)
    except TypeError:
        kind = type(value).__name__
        raise TypeError(f"{where} is {value!r} ({kind}); token ids must be integers and are never truncated: "
                        "convert them where they were made (e.g. tensor.long(), np.asarray(ids, dtype=int))"
                        ) from None


def check_file(path: str | os.PathLike, what: str, fix: str = "") -> Path:
    """``path`` as a Path after checking it is a file; a missing file or a folder raises one line naming it."""
    p = Path(path).expanduser()
    hint = f"; {fix}" if fix else ""
    if p.is_dir():
        raise IsADirectoryError(f"{what} {str(path)!r} is a folder, not a file{hint}")
    if not p.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist{hint}")
    return p


def read_text_file(path: str | os.PathLike, what: str, fix: str = "") -> str:
    """The UTF-8 text of the file a user named as ``what`` (e.g. "texts file"); a missing file, a folder or
    undecodable bytes raise one line naming the file and, with ``fix``, what to pass instead."""
    p = check_file(path, what, fix)
    hint = f"; {fix}" if fix else ""
    data = p.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} {str(path)!r} is not UTF-8 text (byte {data[e.start]:#04x} at offset {e.start}: "
                         f"a binary or differently encoded file){hint}") from None


# --------------------------------------------------------------------------------------------- lock files
HEARTBEAT_SECONDS = 30.0  # a lock holder touches its lock this often
STALE_AFTER_SECONDS = 600.0  # a lock untouched this long has a dead owner (any host)
_log = logging.getLogger("lowres_adapt")


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


class FileLock:
    """A lock file shared across processes and hosts (a study cell, a cache entry being built).

    ``acquire()`` is True when this process holds it, created with ``O_EXCL`` and holding the host and
    pid (a stale lock is taken over); while held, a daemon thread refreshes its heartbeat (the mtime).
    """

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
                _log.warning("taking over the stale lock %s (owner %s)", self.path, _lock_owner(self.path))
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}, fh)
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
