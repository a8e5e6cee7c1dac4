"""A study run's record as a table row, and rows aggregated over seeds: the metrics the reports show, how
each is formatted, which keys are kept, and how ``metrics.json`` / ``error.json`` records are read back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE_RECIPE = "base"  # recipe label of the unadapted model's row ("base (nf4)" etc. when loadings differ)


def is_base_label(label: str | None) -> bool:
    """True for the row of an unadapted base: ``"base"``, or ``"base (<loading>)"`` in a mixed grid."""
    return label == BASE_RECIPE or str(label).startswith(BASE_RECIPE + " (")


@dataclass(frozen=True)
class _Metric:
    """One column of the results table: where it comes from, how it reads, which direction is better."""

    key: str  # key in a flat run record (and prefix of the mean/std columns in results.csv)
    header: str  # Markdown column header
    fmt: Callable[[float], str]
    higher_is_better: bool | None  # None: a cost or a descriptive number, no direction
    show_std: bool = True  # costs and counts show the mean only

    def cell(self, mean: float | None, std: float | None) -> str:
        if mean is None:
            return "–"
        if std is None or not self.show_std:
            return self.fmt(mean)
        if self.fmt is _num and "e" in _num(mean):  # huge numbers: both in the same short notation
            return f"{_num(mean)} ± {std:.2g}"
        if self.fmt is _num:  # the std with as many decimals as the mean
            decimals = len(_num(mean).split(".")[1]) if "." in _num(mean) else 0
            return f"{_num(mean)} ± {std:,.{decimals}f}"
        return f"{self.fmt(mean)} ± {self.fmt(std).lstrip('+')}"


def _num(x: float) -> str:
    ax = abs(x)
    if ax >= 1e6:  # untrained models reach word perplexities in the billions: keep the column narrow
        return f"{x:.3g}"
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.1f}"
    if ax >= 10:
        return f"{x:.2f}"
    return f"{x:.3f}"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _signed(x: float) -> str:
    return f"{x:+.3f}"


def _scaled(x: float, units: tuple[tuple[str, float], ...], spec: str, base_unit: str) -> str:
    """``x`` in the largest of ``units`` (largest first) it reaches, else as a whole number of ``base_unit``."""
    for unit, size in units:
        if abs(x) >= size:
            return f"{x / size:{spec}}{unit}"
    return f"{x:.0f}{base_unit}"


def _bytes(x: float) -> str:
    return _scaled(x, ((" GiB", 2**30), (" MiB", 2**20), (" KiB", 2**10)), ".1f", " B")


def _seconds(x: float) -> str:
    return f"{x / 60:.1f} min" if abs(x) >= 120 else f"{x:.1f} s"


def _count(x: float) -> str:
    return _scaled(x, (("B", 1e9), ("M", 1e6), ("K", 1e3)), ".2f", "")


def _plain(x: float) -> str:
    return f"{x:,.0f}"


def _bpb(x: float) -> str:
    return f"{x:.3f}"


METRICS: tuple[_Metric, ...] = (
    _Metric("trainable_params", "trainable", _count, None, show_std=False),
    _Metric("trainable_share", "share", _pct, None, show_std=False),
    _Metric("token_perplexity", "token ppl", _num, False),
    _Metric("bits_per_byte", "bits/byte", _bpb, False),
    _Metric("word_perplexity", "word ppl", _num, False),
    # share of generations the language identifier could score at all (degenerate text such as "әәәә" or
    # "..." is not); line pass and drift are over the scorable ones only, so read them with it
    _Metric("scorable_share", "scorable", _pct, True),
    _Metric("line_pass_rate", "line pass", _pct, True),
    _Metric("drift_rate", "drift", _pct, False),
    _Metric("ref_bits_per_byte_after", "ref bits/byte", _bpb, False),
    _Metric("ref_bits_per_byte_delta", "ref Δ", _signed, False),
    _Metric("peak_memory_bytes", "peak mem", _bytes, None, show_std=False),
    # tensor memory at the peak of one training step: predicted by la.plan_memory, then measured
    _Metric("planned_peak_memory_bytes", "planned step mem", _bytes, None, show_std=False),
    _Metric("step_peak_memory_bytes", "step mem", _bytes, None, show_std=False),
    _Metric("wall_seconds", "train time", _seconds, None, show_std=False),
    _Metric("tokens_per_second", "tok/s", _plain, True, show_std=False),
)
# More numbers kept per run and aggregated into results.csv/json, but left out of the Markdown table.
EXTRA_KEYS: tuple[str, ...] = (
    "total_params", "byte_perplexity", "word_pass_rate", "mean_target_share", "train_loss", "eval_loss",
    "train_tokens", "ref_bits_per_byte_before",
    "bits_per_byte_ci_low", "bits_per_byte_ci_high", "word_perplexity_ci_low", "word_perplexity_ci_high",
    "token_perplexity_ci_low", "token_perplexity_ci_high", "run_seconds",
)
NUMERIC_KEYS: tuple[str, ...] = tuple(m.key for m in METRICS) + EXTRA_KEYS


# --------------------------------------------------------------------------------------------- records
def _ci(d: dict, metric: str) -> tuple[float | None, float | None]:
    ci = (d.get("confidence_intervals") or {}).get(metric)
    if isinstance(ci, dict):
        lo = ci.get("low", ci.get("lower"))
        hi = ci.get("high", ci.get("upper"))
        return lo, hi
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return ci[0], ci[1]
    return None, None


def flatten_record(record: dict) -> dict:
    """The flat row (model, recipe, seed, status, metric keys) of one run's ``metrics.json`` record."""
    train = record.get("train") or {}
    test = record.get("test") or {}
    drift = record.get("drift") or {}
    ref = record.get("reference") or {}
    row: dict[str, Any] = {
        "run_id": record.get("run_id"),
        "model": record.get("model_label"),
        "recipe": record.get("recipe_label"),
        "rank": record.get("rank"),
        "seed": record.get("seed"),
        "status": record.get("status", "ok"),
        "error": record.get("error"),
        "tokenizer": record.get("tokenizer_fingerprint"),
        # how the base was loaded: the base row's head says; a run's training metrics say
        "base_load": record.get("base_load") or train.get("base_load"),
    }
    trainable, total = train.get("trainable_params"), train.get("total_params")
    row["trainable_params"] = trainable
    row["total_params"] = total
    row["trainable_share"] = trainable / total if trainable is not None and total else None
    for key in ("token_perplexity", "bits_per_byte", "byte_perplexity", "word_perplexity"):
        row[key] = test.get(key)
    for key in ("bits_per_byte", "word_perplexity", "token_perplexity"):
        row[f"{key}_ci_low"], row[f"{key}_ci_high"] = _ci(test, key)
    for key in ("line_pass_rate", "word_pass_rate", "drift_rate", "mean_target_share"):
        row[key] = drift.get(key)
    n_texts, n_scorable = drift.get("n_texts"), drift.get("n_scorable")
    row["scorable_share"] = n_scorable / n_texts if n_texts and n_scorable is not None else None
    for key in ("train_loss", "eval_loss", "train_tokens", "peak_memory_bytes", "wall_seconds",
                "tokens_per_second", "planned_peak_memory_bytes", "step_peak_memory_bytes"):
        row[key] = train.get(key)
    before, after = ref.get("bits_per_byte_before"), ref.get("bits_per_byte_after")
    row["ref_bits_per_byte_before"] = before
    row["ref_bits_per_byte_after"] = after
    is_base = is_base_label(record.get("recipe_label"))
    row["ref_bits_per_byte_delta"] = (after - before if before is not None and after is not None and not is_base
                                      else None)
    row["run_seconds"] = (record.get("timings") or {}).get("run_seconds")
    return row


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    vals = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(float(v))]
    if not vals:
        return None, None
    mean = sum(vals) / len(vals)
    if len(vals) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)  # sample std over seeds (ddof=1)
    return mean, math.sqrt(var)


def aggregate(rows: Iterable[dict]) -> list[dict]:
    """One row per (model, recipe): ``<key>_mean`` and ``<key>_std`` over the finished seeds.

    Groups keep the order in which they first appear. ``n_ok``/``n_failed`` count the seeds; failed
    runs do not enter the means. ``std`` is the sample standard deviation (ddof=1), None for one seed.
    """
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["model"], row["recipe"]), []).append(row)
    out = []
    for (model, recipe), members in groups.items():
        ok = [r for r in members if r["status"] == "ok"]
        agg: dict[str, Any] = {
            "model": model, "recipe": recipe, "rank": members[0].get("rank"),
            "seeds": [r["seed"] for r in ok], "n_ok": len(ok), "n_failed": len(members) - len(ok),
            "tokenizer": members[0].get("tokenizer"), "base_load": members[0].get("base_load"),
        }
        for key in NUMERIC_KEYS:
            agg[f"{key}_mean"], agg[f"{key}_std"] = _mean_std([r.get(key) for r in ok])
        out.append(agg)
    return out



def _read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None when it is missing or not a complete JSON object."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def read_record(run_dir: Path, fingerprint: str | None = None) -> dict | None:
    """A run's finished record (``metrics.json``) or failure record (``error.json``); None when the run
    has not finished, or when ``fingerprint`` is given and the record belongs to other settings."""
    for name in ("metrics.json", "error.json"):
        rec = _read_json(run_dir / name)
        if rec is not None and (fingerprint is None or rec.get("run_fingerprint") == fingerprint):
            return rec
    return None
