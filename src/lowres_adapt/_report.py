"""Study results: per-run records, aggregation over seeds, and the reports (Markdown, CSV, JSON, PNG plots).

``StudyResults`` is what ``Study.run()`` returns; it is plain data read from (and written to) a study's
output folder, so a finished study can be reported again with ``StudyResults.load(folder)`` without
running anything.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._utils import atomic_write_json, atomic_write_text

BASE_RECIPE = "base"  # recipe label of the unadapted model's row


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


def _bytes(x: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(x) >= size:
            return f"{x / size:.1f} {unit}"
    return f"{x:.0f} B"


def _seconds(x: float) -> str:
    return f"{x / 60:.1f} min" if abs(x) >= 120 else f"{x:.1f} s"


def _count(x: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.2f}{unit}"
    return f"{x:.0f}"


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
# Timings and memory vary from run to run; everything else is deterministic for a seed on CPU.
NONDETERMINISTIC_KEYS = frozenset({"peak_memory_bytes", "wall_seconds", "tokens_per_second", "run_seconds",
                                   "step_peak_memory_bytes"})


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
    is_base = record.get("recipe_label") == BASE_RECIPE
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
            "tokenizer": members[0].get("tokenizer"),
        }
        for key in NUMERIC_KEYS:
            agg[f"{key}_mean"], agg[f"{key}_std"] = _mean_std([r.get(key) for r in ok])
        out.append(agg)
    return out


# --------------------------------------------------------------------------------------------- results
class StudyResults:
    """The outcome of a study: one record per run (finished or failed), diagnostics and the study's settings.

    Example::

        >>> import lowres_adapt as la
        >>> res = la.StudyResults(runs=[{"run_id": "m__full__s0", "model_label": "m", "recipe_label": "full",
        ...     "seed": 0, "status": "ok", "train": {"trainable_params": 10, "total_params": 10},
        ...     "test": {"bits_per_byte": 2.5, "token_perplexity": 9.0, "word_perplexity": 90.0}}])
        >>> res.table()[0]["bits_per_byte_mean"]
        2.5
        >>> "| m | full |" in res.to_markdown()
        True
    """

    def __init__(self, runs: list[dict], *, study: dict | None = None, diagnostics: dict | None = None,
                 base: dict | None = None, output_dir: str | os.PathLike | None = None):
        self.runs = list(runs)
        self.study = dict(study or {})
        self.diagnostics = dict(diagnostics or {})  # model label -> diagnostics record
        self.base = dict(base or {})  # model label -> base (unadapted) record
        self.output_dir = Path(output_dir) if output_dir is not None else None

    def __repr__(self) -> str:
        return (f"StudyResults(runs={len(self.runs)}, ok={len(self.runs) - len(self.failed)}, "
                f"failed={len(self.failed)}, output_dir={str(self.output_dir) if self.output_dir else None!r})")

    # ---------------------------------------------------------------- views
    @property
    def failed(self) -> list[dict]:
        """Records of the runs that failed (with their error)."""
        return [r for r in self.runs if r.get("status") != "ok"]

    def run_rows(self) -> list[dict]:
        """One flat row per run; the unadapted base models come first, as recipe ``"base"``."""
        return [flatten_record(r) for r in self.base.values()] + [flatten_record(r) for r in self.runs]

    def table(self) -> list[dict]:
        """One aggregated row per model x recipe (mean and std over seeds), base rows included."""
        rows = aggregate(self.run_rows())
        order = {label: i for i, label in enumerate(dict.fromkeys(r["model"] for r in rows))}
        return sorted(rows, key=lambda r: (order[r["model"]], r["recipe"] != BASE_RECIPE))

    def mixed_tokenizers(self) -> list[list[str]]:
        """Groups of model labels sharing a tokenizer, when more than one tokenizer sits in the table."""
        groups: dict[str, list[str]] = {}
        for label, diag in self.diagnostics.items():
            fp = (diag or {}).get("tokenizer_fingerprint")
            if fp:
                groups.setdefault(fp, []).append(label)
        return list(groups.values()) if len(groups) > 1 else []

    # ---------------------------------------------------------------- Markdown
    def to_markdown(self, *, diagnostics: bool = True) -> str:
        """Returns the report as Markdown: results table, notes, failures and (unless ``diagnostics=False``)
        the tokenizer diagnostics."""
        out = io.StringIO()
        title = self.study.get("name") or "Study results"
        out.write(f"# {title}\n\n")
        meta = self.study
        if meta:
            lang = (meta.get("language") or {}).get("name", "?")
            settings = meta.get("settings") or {}
            out.write(
                f"Language: {lang}. Split fingerprint: `{meta.get('split_fingerprint', '?')}` "
                f"({_split_sizes(meta)}). Seeds: {', '.join(map(str, meta.get('seeds', [])))}. "
                f"Training: {settings.get('max_steps')} steps, block {settings.get('block_size')}, "
                f"batch {settings.get('batch_size')}, learning rate "
                f"{settings.get('learning_rate') if settings.get('learning_rate') is not None else 'recipe default'}."
                f" Settings fingerprint: `{meta.get('settings_fingerprint', '?')}`.\n\n"
            )
        out.write(self._markdown_table())
        out.write("\n")
        out.write(_LEGEND)
        mixed = self.mixed_tokenizers()
        if mixed:
            names = "; ".join(", ".join(g) for g in mixed)
            out.write(
                f"\n> **Note:** this table holds models with different tokenizers ({names}). Their token "
                "perplexities do not compare: a tokenizer that cuts the text into more pieces gets a lower "
                "per-token perplexity for the same text. Compare **bits per byte** or **word perplexity**.\n"
            )
        if self.failed:
            out.write("\n## Failed runs\n\n| run | error |\n| --- | --- |\n")
            for r in self.failed:
                msg = str(r.get("error") or "").splitlines()[0][:200].replace("|", "\\|") if r.get("error") else ""
                out.write(f"| {r.get('run_id')} | {msg} |\n")
            out.write("\nEach failed run's folder holds `error.txt` with the traceback; `run()` again retries it.\n")
        out.write(self._flagged_markdown())
        diag = self._diagnostics_markdown() if diagnostics else ""
        if diag:
            out.write("\n" + diag)
        return out.getvalue()

    def _markdown_table(self) -> str:
        rows = self.table()
        if not rows:
            return "_No runs._\n"
        headers = ["model", "recipe", "rank", *(m.header for m in METRICS), "seeds"]
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
        for r in rows:
            cells = [str(r["model"]), str(r["recipe"]), "–" if r.get("rank") is None else str(r["rank"])]
            for m in METRICS:
                cells.append(m.cell(r[f"{m.key}_mean"], r[f"{m.key}_std"]))
            seeds = f"{r['n_ok']}" + (f" ({r['n_failed']} failed)" if r["n_failed"] else "")
            cells.append(seeds)
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def _flagged_markdown(self, per_run: int = 3) -> str:
        """A few drifted generations per run with the evidence behind each verdict (language, log-odds,
        the words that pushed it), linked to the run's ``generations.jsonl`` for the rest."""
        blocks = []
        for r in self.runs:
            examples = ((r.get("drift") or {}).get("flagged_examples") or [])[:per_run]
            if not examples:
                continue
            lines = [f"- **{r.get('run_id')}** ([all generations](runs/{r.get('run_id')}/generations.jsonl)):"]
            for x in examples:
                text = str(x.get("segment", "")).replace("\n", " ").replace("|", "\\|")[:120]
                words = ", ".join(x.get("words") or [])
                lines.append(f"  - #{x.get('index')} → {x.get('language')} (log-odds {x.get('log_odds', 0):+.1f}, "
                             f"model {x.get('model', 0):+.1f}, alphabet {x.get('alphabet', 0):+.1f}; words: {words}): "
                             f"\"{text}\"")
            blocks.append("\n".join(lines))
        if not blocks:
            return ""
        return ("\n## Drift: flagged examples\n\nThe first segment that left the target language in up to "
                f"{per_run} generations per run, with the evidence behind the verdict (nats; see docs/drift.md).\n\n"
                + "\n".join(blocks) + "\n")

    def _diagnostics_markdown(self) -> str:
        if not self.diagnostics:
            return ""
        out = io.StringIO()
        out.write("## Tokenizer diagnostics (test split)\n\n")
        cols = [("fertility", "fertility", "{:.2f}"), ("continued_word_rate", "continued words", "pct"),
                ("chars_per_token", "chars/token", "{:.2f}"), ("bytes_per_token", "bytes/token", "{:.2f}"),
                ("unk_rate", "UNK", "pct"), ("byte_fallback_rate", "byte fallback", "pct"),
                ("parity", "parity", "{:.2f}"), ("roundtrip_ok", "round trip", "bool")]
        out.write("| model | " + " | ".join(c[1] for c in cols) + " |\n")
        out.write("|" + "|".join(" --- " for _ in range(len(cols) + 1)) + "|\n")
        letters: dict[str, dict] = {}
        warnings: dict[str, list] = {}
        for label, diag in self.diagnostics.items():
            rep = (diag or {}).get("report")
            if not rep:
                err = str((diag or {}).get("error", "not available")).splitlines()[0][:150]
                out.write(f"| {label} | " + " | ".join("–" for _ in cols) + f" |\n<!-- {err} -->\n")
                continue
            cells = []
            for key, _, fmt in cols:
                v = rep.get(key)
                if isinstance(v, dict):  # parity per reference language
                    cells.append(", ".join(f"{k} {x:.2f}" for k, x in v.items()))
                    continue
                if v is None:
                    cells.append("–")
                elif fmt == "pct":
                    cells.append(_pct(v))
                elif fmt == "bool":
                    cells.append("yes" if v else "**no**")
                else:
                    cells.append(fmt.format(v))
            out.write(f"| {label} | " + " | ".join(cells) + " |\n")
            if rep.get("letter_coverage"):
                letters[label] = rep["letter_coverage"]
            if rep.get("warnings"):
                warnings[label] = rep["warnings"]
        if letters:
            all_letters = list(dict.fromkeys(ch for cov in letters.values() for ch in cov))
            out.write("\nShare of each special letter's occurrences kept whole inside one token "
                      "(✗: the vocabulary has no token containing the letter):\n\n")
            out.write("| model | " + " | ".join(all_letters) + " |\n")
            out.write("|" + "|".join(" --- " for _ in range(len(all_letters) + 1)) + "|\n")
            for label, cov in letters.items():
                cells = []
                for ch in all_letters:
                    c = cov.get(ch) or {}
                    mark = "" if c.get("in_vocab", True) else " ✗"
                    share = c.get("whole_share")
                    # a letter absent from the evaluated text has no share (None): show a dash
                    cells.append(f"{100 * share:.0f}%{mark}" if share is not None else f"–{mark}")
                out.write(f"| {label} | " + " | ".join(cells) + " |\n")
        if warnings:
            out.write("\nWarnings:\n\n")
            for label, ws in warnings.items():
                for w in ws:
                    text = w if isinstance(w, str) else w.get("message", json.dumps(w, ensure_ascii=False))
                    out.write(f"- **{label}**: {text}\n")
        return out.getvalue()

    # ---------------------------------------------------------------- CSV / JSON
    def to_csv(self, path: str | os.PathLike | None = None, *, per_run: bool = False) -> str:
        """Returns the table as CSV (one row per model x recipe, or per run with ``per_run=True``);
        also writes it to ``path`` when given."""
        rows = self.run_rows() if per_run else self.table()
        if per_run:
            fields = ["run_id", "model", "recipe", "rank", "seed", "status", *NUMERIC_KEYS, "error"]
        else:
            fields = ["model", "recipe", "rank", "n_ok", "n_failed", "seeds"]
            for key in NUMERIC_KEYS:
                fields += [f"{key}_mean", f"{key}_std"]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in rows:
            r = dict(r)
            if "seeds" in r and isinstance(r["seeds"], list):
                r["seeds"] = " ".join(map(str, r["seeds"]))
            if r.get("error"):
                r["error"] = str(r["error"]).splitlines()[0]
            writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})
        text = buf.getvalue()
        if path is not None:
            atomic_write_text(path, text)
        return text

    def to_dict(self) -> dict:
        """Everything as a JSON-friendly dict: study settings, table, per-run rows and records, diagnostics."""
        return {
            "study": self.study,
            "table": self.table(),
            "runs": self.run_rows(),
            "records": [_without_per_document(r) for r in self.runs],
            "base": {k: _without_per_document(v) for k, v in self.base.items()},
            "diagnostics": self.diagnostics,
        }

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """Returns :meth:`to_dict` as JSON text; also writes it (atomically) to ``path`` when given."""
        obj = self.to_dict()
        if path is not None:
            atomic_write_json(path, obj)
        return json.dumps(obj, indent=2, ensure_ascii=False, default=str)

    # ---------------------------------------------------------------- plots
    def plot(self, folder: str | os.PathLike) -> list[Path]:
        """Writes PNG plots into ``folder`` and returns their paths.

        ``bpb_vs_trainable_params.png``: bits per byte against trainable parameters (log scale), one point
        per model x recipe with the std over seeds as error bars; ``bpb_by_model.png`` and
        ``line_pass_by_model.png``: per-model bars per recipe with error bars.
        """
        # The object-oriented API with the Agg canvas: no pyplot, no global backend switch.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        rows = [r for r in self.table() if r["bits_per_byte_mean"] is not None]
        paths: list[Path] = []
        if not rows:
            return paths

        def save(fig, name):
            FigureCanvasAgg(fig)
            path = folder / name
            tmp = folder / f".{name}.tmp.png"
            fig.savefig(tmp, dpi=120, bbox_inches="tight")
            os.replace(tmp, path)
            paths.append(path)

        # bits per byte vs trainable parameters
        fig = Figure(figsize=(7, 4.5))
        ax = fig.add_subplot()
        models = list(dict.fromkeys(r["model"] for r in rows))
        markers = "os^Dv<>pP*X"
        for i, model in enumerate(models):
            pts = [r for r in rows if r["model"] == model and r["trainable_params_mean"]]
            if not pts:
                continue
            ax.errorbar([r["trainable_params_mean"] for r in pts], [r["bits_per_byte_mean"] for r in pts],
                        yerr=[r["bits_per_byte_std"] or 0.0 for r in pts], fmt=markers[i % len(markers)],
                        capsize=3, label=model)
            # recipes with the same trainable count (LoRA and QLoRA of one rank) share one label, stacked
            by_x: dict[float, list[dict]] = {}
            for r in pts:
                by_x.setdefault(r["trainable_params_mean"], []).append(r)
            for x, group in by_x.items():
                group.sort(key=lambda r: r["bits_per_byte_mean"])
                label = "\n".join(f"{r['recipe']} {r['bits_per_byte_mean']:.3f}" for r in group)
                ax.annotate(label, (x, group[0]["bits_per_byte_mean"]), textcoords="offset points", xytext=(5, 4),
                            fontsize=7, va="bottom")
        for r in rows:  # unadapted bases as dashed lines
            if r["recipe"] == BASE_RECIPE:
                ax.axhline(r["bits_per_byte_mean"], ls="--", lw=0.8, color="grey")
                ax.annotate(f"{r['model']} base", (0.01, r["bits_per_byte_mean"]), xycoords=("axes fraction", "data"),
                            textcoords="offset points", xytext=(0, 3), fontsize=7, color="grey")
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters (log scale)")
        ax.set_ylabel("bits per byte on the test split (lower is better)")
        ax.set_title("Quality against trainable parameters (mean ± std over seeds)")
        ax.grid(True, which="both", alpha=0.3)
        if len(models) > 1:
            ax.legend(fontsize=8)
        save(fig, "bpb_vs_trainable_params.png")

        for key, name, ylabel in (
            ("bits_per_byte", "bpb_by_model.png", "bits per byte (lower is better)"),
            ("line_pass_rate", "line_pass_by_model.png", "line pass rate of generations (higher is better)"),
        ):
            usable = [r for r in self.table() if r[f"{key}_mean"] is not None]
            if not usable:
                continue
            models = list(dict.fromkeys(r["model"] for r in usable))
            fig = Figure(figsize=(max(4.0, 3.2 * len(models)), 4))
            axes = fig.subplots(1, len(models), squeeze=False)[0]
            for ax, model in zip(axes, models, strict=False):
                rs = [r for r in usable if r["model"] == model]
                colors = ["0.6" if r["recipe"] == BASE_RECIPE else f"C{i}" for i, r in enumerate(rs)]
                ax.bar(range(len(rs)), [r[f"{key}_mean"] for r in rs], yerr=[r[f"{key}_std"] or 0.0 for r in rs],
                       capsize=4, color=colors)
                ax.set_xticks(range(len(rs)), [r["recipe"] for r in rs], rotation=30, ha="right", fontsize=8)
                ax.set_title(model, fontsize=9)
                ax.grid(True, axis="y", alpha=0.3)
            axes[0].set_ylabel(ylabel, fontsize=8)
            save(fig, name)
        return paths

    # ---------------------------------------------------------------- files
    def save(self, folder: str | os.PathLike | None = None) -> dict[str, Path]:
        """Writes results.md, results.csv, runs.csv, results.json and plots/ into ``folder`` (default: the
        study's output folder); returns the paths by name."""
        folder = Path(folder) if folder is not None else self.output_dir
        if folder is None:
            raise ValueError("StudyResults.save needs a folder: pass one, or load the results from a study folder")
        paths = {
            "markdown": folder / "results.md", "csv": folder / "results.csv", "runs_csv": folder / "runs.csv",
            "json": folder / "results.json",
        }
        atomic_write_text(paths["markdown"], self.to_markdown())
        self.to_csv(paths["csv"])
        self.to_csv(paths["runs_csv"], per_run=True)
        self.to_json(paths["json"])
        for p in self.plot(folder / "plots"):
            paths[p.stem] = p
        return paths

    @classmethod
    def load(cls, folder: str | os.PathLike) -> StudyResults:
        """Reads the results of a study folder (finished and failed runs; unfinished runs are left out).

        Example::

            >>> import lowres_adapt as la
            >>> la.StudyResults.load("runs/bashkir-demo")            # doctest: +SKIP
        """
        folder = Path(folder)
        meta_path = folder / "study.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{str(folder)!r} is not a study folder (no study.json); run a Study into it first")
        study = json.loads(meta_path.read_text(encoding="utf-8"))
        runs = []
        for run_id in study.get("run_ids", []):
            rec = read_record(folder / "runs" / run_id)
            if rec is not None:
                runs.append(rec)
        diagnostics, base = {}, {}
        for label in study.get("model_labels", []):
            d = _read_json(folder / "diagnostics" / f"{label}.json")
            if d is not None:
                diagnostics[label] = d
            b = read_record(folder / "base" / label)
            if b is not None:
                base[label] = b
        return cls(runs, study=study, diagnostics=diagnostics, base=base, output_dir=folder)


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


def _without_per_document(rec: dict) -> dict:
    rec = dict(rec)
    for key in ("test", "reference_before", "reference_after"):
        if isinstance(rec.get(key), dict):
            rec[key] = {k: v for k, v in rec[key].items() if k != "per_document"}
    return rec


def _split_sizes(meta: dict) -> str:
    sizes = meta.get("split_sizes") or {}
    return ", ".join(f"{k} {v} docs" for k, v in sizes.items()) or "sizes unknown"


_LEGEND = (
    "\nMean ± sample std over the finished seeds. **bits/byte** and **word ppl** compare across tokenizers; "
    "**token ppl** only within one tokenizer. **scorable**: share of generations the language identifier could "
    "score (degenerate output such as repeated letters or punctuation is not); **line pass**: share of the "
    "scorable generations whose every line is in the target language; **drift**: share of them that switched "
    "language. **ref bits/byte**: bits per byte on the "
    "reference-language corpus (retention), **ref Δ** its change from the base (positive = the language the base "
    "knew got worse). **train time**, **tok/s**, **peak mem**: from training. "
    "**share**: trainable share of all parameters. Row `base`: the model before adaptation.\n"
)
