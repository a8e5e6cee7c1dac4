"""The grid's memory plan: for each cell, the planned peak of one training step (``planning.plan_memory``,
from the model's config only, no weights), whether it fits one device, and the largest batch that does.
"""

from __future__ import annotations

from typing import Any

from ..errors import StudyConfigError
from ._inputs import _TINY_RE


def _config_source(study, model: str) -> Any:
    """What ``plan_memory`` reads for ``model``: a folder / hub id / sample, or a ``tiny:`` model's config."""
    from ..data import resolve_sample

    m = _TINY_RE.match(model)
    if not m:
        return resolve_sample(model)
    built = study.output_dir / "models" / study._model_labels[model] / "config.json"
    if built.is_file():
        return str(built.parent)
    from ..modeling import build_tiny_model  # the tiny model's shape, as the study builds it (a few KB)

    return build_tiny_model(m.group(1), vocab_size=1000, hidden_size=64, num_layers=2, num_heads=4,
                            max_positions=max(256, study.block_size)).config


def plan_cells(study, device_memory: int | str, *, device: str = "cuda", **options: Any) -> list[dict]:
    """One row per cell: run id, model, recipe, seed, planned peak bytes, fits, largest batch (and the
    error when a model's config cannot be read)."""
    from ..planning import plan_memory

    training = study.training
    settings = {"batch_size": study.batch_size, "block_size": study.block_size, "device": device,
                "gradient_accumulation_steps": int(training.get("gradient_accumulation_steps", 1)),
                "optimizer": str(training.get("optim", "adamw")),
                "gradient_checkpointing": training.get("gradient_checkpointing"),
                "dtype": training.get("dtype"), **options}
    rows, plans = [], {}
    for spec in study._specs:
        key = (spec.model, spec.recipe_label)
        if key not in plans:
            try:
                plan = plan_memory(_config_source(study, spec.model), spec.recipe, device_memory=device_memory,
                                   **settings)
                plans[key] = {"planned_peak_bytes": plan.total, "fits": bool(plan.fits),
                              "largest_batch_size": plan.largest_batch_size, "error": None}
            except (OSError, ValueError, TypeError) as e:  # a missing config, an unplannable recipe
                plans[key] = {"planned_peak_bytes": None, "fits": False, "largest_batch_size": None,
                              "error": f"{type(e).__name__}: {e}"}
        rows.append({"run_id": spec.run_id, "model": spec.model, "recipe": spec.recipe_label, "seed": spec.seed,
                     "batch_size": study.batch_size, "block_size": study.block_size, **plans[key]})
    return rows


def plan_table(rows: list[dict]) -> str:
    """Returns the plan rows as a Markdown table (GiB, fits, largest batch).

    Example::

        >>> print(plan_table([{"run_id": "m__full__s0", "model": "m", "recipe": "full", "seed": 0,
        ...                    "planned_peak_bytes": 3 * 2**30, "fits": True, "largest_batch_size": 32,
        ...                    "batch_size": 8, "error": None}]))
        | cell | model | recipe | seed | batch | planned peak | fits | largest batch |
        |---|---|---|---|---|---|---|---|
        | m__full__s0 | m | full | 0 | 8 | 3.00 GiB | yes | 32 |
    """
    if not rows:
        raise StudyConfigError("the plan has no cells")
    lines = ["| cell | model | recipe | seed | batch | planned peak | fits | largest batch |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        peak = "–" if r["planned_peak_bytes"] is None else f"{r['planned_peak_bytes'] / 2**30:.2f} GiB"
        fits = "yes" if r["fits"] else ("NO" if r.get("error") is None else f"NO ({r['error']})")
        largest = "–" if not r["largest_batch_size"] else str(r["largest_batch_size"])
        lines.append(f"| {r['run_id']} | {r['model']} | {r['recipe']} | {r['seed']} | {r['batch_size']} | {peak} "
                     f"| {fits} | {largest} |")
    return "\n".join(lines)
