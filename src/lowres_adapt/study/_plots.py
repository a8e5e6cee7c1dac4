"""The PNG plots of a study's results (matplotlib's object-oriented API on the Agg canvas: no pyplot, no
global backend switch)."""

from __future__ import annotations

import os
from pathlib import Path

from ._rows import is_base_label


def plot_results(results, folder: str | os.PathLike) -> list[Path]:
    """Writes the PNG plots of ``results`` (a ``StudyResults``) into ``folder`` and returns their paths.

    ``bpb_vs_trainable_params.png``: bits per byte against trainable parameters (log scale), one point
    per model x recipe with the std over seeds as error bars; ``bpb_by_model.png`` and
    ``line_pass_by_model.png``: per-model bars per recipe with error bars.
    """
    # The object-oriented API with the Agg canvas: no pyplot, no global backend switch.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = [r for r in results.table() if r["bits_per_byte_mean"] is not None]
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
        if is_base_label(r["recipe"]):
            ax.axhline(r["bits_per_byte_mean"], ls="--", lw=0.8, color="grey")
            ax.annotate(f"{r['model']} {r['recipe']}", (0.01, r["bits_per_byte_mean"]), xycoords=("axes fraction", "data"),
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
        usable = [r for r in results.table() if r[f"{key}_mean"] is not None]
        if not usable:
            continue
        models = list(dict.fromkeys(r["model"] for r in usable))
        fig = Figure(figsize=(max(4.0, 3.2 * len(models)), 4))
        axes = fig.subplots(1, len(models), squeeze=False)[0]
        for ax, model in zip(axes, models, strict=False):
            rs = [r for r in usable if r["model"] == model]
            colors = ["0.6" if is_base_label(r["recipe"]) else f"C{i}" for i, r in enumerate(rs)]
            ax.bar(range(len(rs)), [r[f"{key}_mean"] for r in rs], yerr=[r[f"{key}_std"] or 0.0 for r in rs],
                   capsize=4, color=colors)
            ax.set_xticks(range(len(rs)), [r["recipe"] for r in rs], rotation=30, ha="right", fontsize=8)
            ax.set_title(model, fontsize=9)
            ax.grid(True, axis="y", alpha=0.3)
        axes[0].set_ylabel(ylabel, fontsize=8)
        save(fig, name)
    return paths
