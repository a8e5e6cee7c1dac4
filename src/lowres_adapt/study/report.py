"""Study results and their reports (Markdown, CSV, JSON; the PNG plots are in ``_report_plots``, the rows and
their aggregation over seeds in ``_report_rows``).

``StudyResults`` is what ``Study.run()`` returns; it is plain data read from (and written to) a study's
output folder, so a finished study can be reported again with ``StudyResults.load(folder)`` without
running anything.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from .._utils import atomic_write_json, atomic_write_text
from ._rows import (
    BASE_RECIPE,
    METRICS,
    NUMERIC_KEYS,
    _pct,
    _read_json,
    aggregate,
    flatten_record,
    is_base_label,
    read_record,
)


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
        return sorted(rows, key=lambda r: (order[r["model"]], not is_base_label(r["recipe"])))

    def mixed_tokenizers(self) -> list[list[str]]:
        """Groups of model labels sharing a tokenizer, when more than one tokenizer sits in the table."""
        groups: dict[str, list[str]] = {}
        for label, diag in self.diagnostics.items():
            fp = (diag or {}).get("tokenizer_fingerprint")
            if fp:
                groups.setdefault(fp, []).append(label)
        return list(groups.values()) if len(groups) > 1 else []

    # ---------------------------------------------------------------- Markdown
    def warnings(self) -> list[str]:
        """Returns what to be careful about in these numbers (e.g. intervals over fewer than 10 test
        documents), each once, with the rows it concerns."""
        found: dict[str, list[str]] = {}
        for rec in [*self.base.values(), *self.runs]:
            for part in ("test", "reference"):
                for w in (rec.get(part) or {}).get("warnings") or []:
                    found.setdefault(f"{part}: {w}", []).append(str(rec.get("run_id")))
        return [f"{w} ({', '.join(ids) if len(ids) <= 3 else f'{len(ids)} rows'})" for w, ids in found.items()]

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
        for caution in self.warnings():
            out.write(f"\n> **Warning:** {caution}\n")
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
        starts = {label: (diag or {}).get("report", {}).get("document_start") for label, diag in self.diagnostics.items()}
        if any(starts.values()):
            out.write("\nDocument start (the token each document is conditioned on):\n\n")
            for label, d in starts.items():
                if d:
                    out.write(f"- {label}: {_document_start_line(d)}\n")
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
            fields = ["run_id", "model", "recipe", "base_load", "rank", "seed", "status", *NUMERIC_KEYS, "error"]
        else:
            fields = ["model", "recipe", "base_load", "rank", "n_ok", "n_failed", "seeds"]
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
            "warnings": self.warnings(),
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
        from ._plots import plot_results

        return plot_results(self, folder)

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
        labels = study.get("model_labels", [])
        for label in labels:
            d = _read_json(folder / "diagnostics" / f"{label}.json")
            if d is not None:
                diagnostics[label] = d
        # one base folder per model, or per model and loading when the grid's runs load differently
        for run_dir in sorted((folder / "base").iterdir()) if (folder / "base").is_dir() else ():
            b = read_record(run_dir)
            if b is not None and b.get("model_label") in labels:
                key = b["model_label"] if b.get("recipe_label") == BASE_RECIPE else f"{b['model_label']}@{b.get('base_load')}"
                base[key] = b
        return cls(runs, study=study, diagnostics=diagnostics, base=base, output_dir=folder)


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


def _document_start_line(d: dict) -> str:
    """One line of the tokenizer section: has the tokenizer a BOS, and did training and evaluation use it."""
    token = f"`{d.get('start_token')}`"
    if d.get("has_bos"):
        what = f"BOS {token}" + (" (the same token as EOS)" if d.get("bos_is_eos") else "")
    elif d.get("start_token") is not None:
        what = f"no BOS; EOS {token} stands in for it"
    else:
        return "no BOS and no EOS: documents start without a conditioning token"
    if d.get("used_in_training"):
        used = "training (isolated packing) and evaluation start every document with it"
    else:
        used = (f"evaluation conditions every document on it; training (packing {d.get('packing')!r}) does not "
                "start documents with it")
    return f"{what}; {used}."
