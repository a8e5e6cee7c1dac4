"""The Bashkir adaptation study: models x recipes x seeds, evaluated so that numbers compare across tokenizers.

Three presets:

- ``demo`` (the default): the study in miniature, offline, about 3 minutes on a 2-core CPU. The base is
  ``mini-gpt2-ru`` (shipped with the package: a 5.3 M-parameter GPT-2 pretrained on Russian and English
  that never saw Bashkir), adapted on the shipped Bashkir sample with full fine-tuning, LoRA and QLoRA
  (rank 8, all linear layers), 2 seeds, 60 steps each. The tokenizer diagnostics warn before training;
  the table shows bits per byte with intervals, drift of generations from the shipped prompts, and
  retention (bits per byte on the shipped Russian sample). docs/tutorial.md reads the table.
- ``smoke``: the plumbing in under a minute: two tiny models initialised at random (GPT-2 and Llama
  style) with a tokenizer trained on the sample. Numbers from it mean nothing; the tests run it.
- ``paper``: the Bashkir paper's grid (DistilGPT2, GPT-2, GPT-2 medium with full fine-tuning; Phi-2,
  Qwen2.5-7B, DeepSeek-7B, Mistral-7B with LoRA and QLoRA at ranks 8 and 16; seeds 0, 1, 2) on the
  corpus you give with ``--corpus``. It needs the hub (or local copies) and a GPU.

Every run is resumable: run the same command again after an interruption and finished runs are read
back. Commands (from the repository root)::

    # the demo (the README's `make demo`): writes runs/bashkir-demo/results.md, .csv, .json, plots/
    python examples/bashkir_study.py

    # the plumbing only, tiny random models, seconds
    python examples/bashkir_study.py --preset smoke --seeds 0 --max-steps 5 --output-dir runs/bashkir-smoke

    # CPU-scale replication on the same base and the real corpus (docs/results.md#study-replication)
    python examples/bashkir_study.py --models ../shared/models/mini-gpt2-ru --corpus ../shared/data/bashkir \\
        --recipes full,lora,qlora --seeds 0,1,2 --max-steps 30 --learning-rate 5e-4 \\
        --max-eval-documents 8 --prompts ../shared/data/bashkir/prompts-ba.txt \\
        --parallel ../shared/data/bashkir/parallel-ba-ru-en.jsonl \\
        --reference-corpus ../shared/data/bashkir/parallel-ba-ru-en.jsonl --reference-field ru \\
        --output-dir runs/mini-gpt2-ru

    # the paper's grid (GPU, hub access), with a Russian corpus to measure retention
    python examples/bashkir_study.py --preset paper --corpus hf:my-org/bashkir-corpus \\
        --reference-corpus russian.jsonl --output-dir runs/bashkir-paper

    # pick models and recipes yourself (recipe shorthands: full, lora, lora-r16, qlora, qlora-r16,
    # dora, rslora, pissa)
    python examples/bashkir_study.py --preset paper --models distilgpt2,gpt2 --recipes full,lora-r16 \\
        --corpus corpus.jsonl --seeds 0 --max-steps 200

A folder holding a study made with other settings is refused: pick another ``--output-dir``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lowres_adapt as la

PAPER_FULL = ["distilgpt2", "gpt2", "gpt2-medium"]
PAPER_ADAPTER = ["microsoft/phi-2", "Qwen/Qwen2.5-7B", "deepseek-ai/deepseek-llm-7b-base",
                 "mistralai/Mistral-7B-v0.1"]
PAPER_ADAPTER_RECIPES = ["lora", "lora-r16", "qlora", "qlora-r16"]

NOTES = {
    "demo": ("Note: the study in miniature: a 5.3M-parameter base pretrained on Russian and English, adapted on "
             "45 Bashkir sample documents for 60 steps. It shows the study's effects (drift, retention, bits per "
             "byte across recipes), not its numbers; docs/tutorial.md reads the table."),
    "smoke": ("Note: the smoke preset trains tiny models initialised at random on ~40 sample documents. It shows "
              "the pipeline (diagnostics, training, evaluation, drift, reports), not the paper's numbers."),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="See the module docstring (or docs/tutorial.md) for example commands.")
    p.add_argument("--preset", choices=("demo", "smoke", "paper"), default="demo",
                   help="demo: the shipped pretrained base mini-gpt2-ru on the shipped Bashkir sample (default); "
                        "smoke: tiny random-init models, the plumbing only; paper: the paper's grid")
    p.add_argument("--models", help="comma-separated model paths or hub ids (replaces the preset's models)")
    p.add_argument("--recipes", help="comma-separated recipes, e.g. full,lora,lora-r16,qlora (replaces the preset's)")
    p.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2")
    p.add_argument("--corpus", help="corpus path (.txt, .jsonl, a folder; a folder with train/valid/test files "
                                    "is used as ready-made splits) or 'hf:<dataset>[:<config>][@<split>]'")
    p.add_argument("--reference-corpus", help="reference-language corpus (e.g. Russian) for retention: bits per "
                                              "byte on it before and after adaptation")
    p.add_argument("--reference-field", default="text",
                   help="JSONL field of the reference corpus (e.g. 'ru' for a parallel file); default: text")
    p.add_argument("--prompts", help="prompts file for generation and drift, one per line "
                                     "(default: the first words of test documents)")
    p.add_argument("--parallel", help="JSONL of aligned sentences with fields 'ba' and reference codes, for "
                                      "tokenizer parity")
    p.add_argument("--max-steps", type=int, help="optimizer steps per run")
    p.add_argument("--block-size", type=int, help="tokens per training sequence")
    p.add_argument("--batch-size", type=int, help="sequences per step")
    p.add_argument("--learning-rate", type=float, help="learning rate (default: each recipe's own)")
    p.add_argument("--max-eval-documents", type=int,
                   help="evaluate on at most this many test (and, during training, valid) documents")
    p.add_argument("--output-dir", help="where the runs and reports go")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def split_list(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def build_demo_models(folder: Path, train_docs: list[str]) -> list[str]:
    """Returns the paths of two tiny checkpoints (GPT-2 and Llama style) sharing one tokenizer trained on
    ``train_docs``; built once, reused on later runs."""
    paths = [folder / "tiny-gpt2", folder / "tiny-llama"]
    if all((p / "config.json").is_file() for p in paths):
        return [str(p) for p in paths]
    tokenizer = la.train_tokenizer(train_docs, vocab_size=800)
    for path, arch in zip(paths, ("gpt2", "llama"), strict=True):
        la.save_tiny_checkpoint(path, arch, tokenizer=tokenizer, hidden_size=64, num_layers=2, num_heads=4,
                                max_positions=128, seed=0)
    return [str(p) for p in paths]


def make_studies(args: argparse.Namespace) -> list[la.Study]:
    """Returns the Studies the arguments describe (nothing is trained yet): one, or two for the full
    paper grid."""
    seeds = [int(s) for s in split_list(args.seeds)] if args.seeds else None
    models, recipes = split_list(args.models), split_list(args.recipes)
    common = dict(
        language=la.BASHKIR, prompts=args.prompts, parallel=args.parallel,
        reference_corpus=({"source": args.reference_corpus, "text_field": args.reference_field}
                          if args.reference_corpus else None),
        max_eval_documents=args.max_eval_documents, progress=not args.quiet,
    )
    if args.preset == "paper":
        if not args.corpus:
            raise ValueError("--preset paper needs --corpus (a path or an 'hf:' spec of a Bashkir corpus)")
        out = Path(args.output_dir or "runs/bashkir-paper")
        parts = [(out, models or PAPER_FULL + PAPER_ADAPTER, recipes or ["full"])]
        if models is None and recipes is None:
            # The paper's grid is not a full product (full fine-tuning for the small models, adapters for
            # the large ones): two studies, each in its own folder.
            parts = [(out / "full", PAPER_FULL, ["full"]),
                     (out / "adapters", PAPER_ADAPTER, PAPER_ADAPTER_RECIPES)]
        return [la.Study(models=m, recipes=r, seeds=seeds or [0, 1, 2], corpus=args.corpus, output_dir=o,
                         max_steps=args.max_steps or 1000, block_size=args.block_size or 512,
                         batch_size=args.batch_size or 8, learning_rate=args.learning_rate,
                         name="bashkir-paper", **common)
                for o, m, r in parts]

    out = Path(args.output_dir or f"runs/bashkir-{'smoke' if args.preset == 'smoke' else 'demo'}")
    recipes = recipes or ["full", "lora", "qlora"]
    if models is not None:  # your own (pretrained) models on your corpus: the recipes' default settings
        if not args.corpus:
            raise ValueError("--models needs --corpus (the presets' sample corpus goes with their own models)")
        return [la.Study(models=models, recipes=recipes, seeds=seeds or [0, 1], corpus=args.corpus,
                         output_dir=out, max_steps=args.max_steps or 100, block_size=args.block_size or 128,
                         batch_size=args.batch_size or 8, learning_rate=args.learning_rate,
                         generation={"max_new_tokens": 32}, name="bashkir-study", **common)]
    if args.corpus:
        splits = la.load_splits(args.corpus) if la.has_splits(args.corpus) else la.split_documents(
            la.load_corpus(args.corpus), valid=0.1, test=0.1, seed=0)
    else:
        splits = la.split_documents(la.sample_corpus("ba"), valid=0.1, test=0.1, seed=0)
    if common["reference_corpus"] is None:  # retention: bits per byte on the shipped Russian sample
        common["reference_corpus"] = "sample:ru"
    # gradient checkpointing (QLoRA's default) only costs time on models this small
    training = {"gradient_checkpointing": False, "warmup_steps": 0.1}
    if args.preset == "smoke":
        # Split first, then train the tokenizer on the train split only (no test text leaks into it).
        models = build_demo_models(out / "models", splits["train"])
        return [la.Study(
            models=models, recipes=recipes, seeds=seeds or [0, 1], corpus=splits, output_dir=out,
            max_steps=args.max_steps or 100, block_size=args.block_size or 64, batch_size=args.batch_size or 4,
            # tiny random models need a larger step than pretrained ones to move in a hundred steps
            learning_rate=args.learning_rate or 2e-3, training=training,
            evaluation={"bootstrap_samples": 200}, generation={"max_new_tokens": 16}, num_prompts=8,
            name="bashkir-smoke", **common)]
    # The demo: the shipped pretrained base, adapters on all linear layers (the QLoRA paper's setting; on
    # a model this small attention-only LoRA barely moves in 60 steps), sampled generations from the shipped
    # prompts so that drift is measured on varied text rather than one greedy loop per prompt.
    if common["prompts"] is None:
        common["prompts"] = "sample:ba"
    if not args.recipes:
        recipes = [la.FullFineTuning(), la.LoRA(r=8, target_modules="all-linear"),
                   la.QLoRA(r=8, target_modules="all-linear")]
    return [la.Study(
        models=["sample:mini-gpt2-ru"], recipes=recipes, seeds=seeds or [0, 1], corpus=splits, output_dir=out,
        max_steps=args.max_steps or 60, block_size=args.block_size or 128, batch_size=args.batch_size or 8,
        learning_rate=args.learning_rate or 1e-3, training=training,
        evaluation={"bootstrap_samples": 200},
        generation={"max_new_tokens": 32, "min_new_tokens": 16, "do_sample": True, "temperature": 0.8, "top_p": 0.95},
        num_prompts=24, name="bashkir-demo", **common)]


def quiet_libraries() -> None:
    """Library warnings (attention masks, optional CPU kernels) would break up the progress bar; each
    run's trainer output is kept in its folder's log.txt."""
    import logging

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_libraries()
    note = None if args.models else NOTES.get(args.preset)
    if note:
        print(note, flush=True)
    try:
        studies = make_studies(args)
        failed = 0
        for study in studies:
            print(f"\n{study!r}: {len(study.plan())} runs", flush=True)
            results = study.run()
            print()
            # the demo's one base: its tokenizer table and warnings too (the report always has them)
            print(results.to_markdown(diagnostics=args.preset == "demo" and not args.models))
            print(f"Report: {results.paths['markdown']} (also results.csv, results.json, plots/)")
            failed += len(results.failed)
            for rec in results.failed:
                print(f"  failed: {rec['run_id']}: {rec.get('error')}")
    except (la.LowresAdaptError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if note:
        print("\n" + note)
    return 3 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
