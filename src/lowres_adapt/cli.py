"""The ``lowres-adapt`` command: diagnose, train, evaluate, drift and study from the shell.

Every subcommand prints a readable result (``--json PATH`` also writes it as JSON), shows progress on
long work, and exits non-zero with a one-line error on failure (``--debug`` shows the traceback)::

    lowres-adapt diagnose gpt2 path/to/model --corpus corpus.jsonl --language ba
    lowres-adapt train path/to/model --recipe lora-r16 --corpus corpus.jsonl --output-dir runs/lora
    lowres-adapt evaluate runs/lora --corpus corpus.jsonl --split test
    lowres-adapt drift --model runs/lora --prompts prompts.txt --language ba
    lowres-adapt study examples/study.yaml
    lowres-adapt plan mistralai/Mistral-7B-v0.1 --recipe qlora --r 16 --block-size 2048 --gpu-memory 24GB

Exit codes: 0 success, 1 an error (bad input, a model that fails to load, ...), 2 bad command-line
usage, 3 a study finished but some of its runs failed, 4 ``plan``: the step does not fit in
``--gpu-memory``, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import warnings
from typing import Any

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_RUNS_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_DOES_NOT_FIT = 4

_CORPUS_HELP = ("documents: a .txt file (blank-line separated), a .jsonl file, a folder of those (a folder with "
                "train/valid/test files is used as ready-made splits), 'hf:<dataset>[:<config>][@<split>]', or "
                "'sample:ba' (the sample corpus shipped with the package)")


# --------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """Returns the ``lowres-adapt`` argument parser (no heavy import happens here)."""
    from . import __version__

    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="lowres-adapt", formatter_class=fmt,
        description="Adapt pretrained causal LMs to low-resource, agglutinative languages and measure the "
                    "result honestly (bits per byte, word perplexity, language drift).",
        epilog="Run 'lowres-adapt <command> --help' for a command's options. Docs: docs/cli.md",
    )
    parser.add_argument("--version", action="version", version=f"lowres-adapt {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars or log lines")
    sub = parser.add_subparsers(dest="command", metavar="<command>")

    # diagnose
    p = sub.add_parser(
        "diagnose", parents=[common], formatter_class=fmt,
        help="tokenizer diagnostics (fertility, byte fallback, letter coverage, parity)",
        description="Diagnose how one or more tokenizers cut text of a language, before any training:\n"
                    "fertility, continued-word rate, byte fallback, UNK, round trip, special-letter coverage\n"
                    "and (with --parallel) parity against a reference language.",
        epilog="example:\n  lowres-adapt diagnose gpt2 ./my-model --corpus ba.jsonl --language ba "
               "--parallel parallel.jsonl",
    )
    p.add_argument("tokenizers", nargs="+", metavar="TOKENIZER", help="tokenizer or model folders / hub ids")
    _add_corpus(p, required=True)
    p.add_argument("--split", choices=("train", "valid", "test", "all"), default="all",
                   help="which split of the corpus to diagnose on (default: all documents)")
    _add_language(p)
    p.add_argument("--parallel", metavar="JSONL",
                   help="parallel sentences, one JSON object per line with a field per language code "
                        "(e.g. {\"ba\": ..., \"ru\": ...}); gives parity against each reference language")
    p.add_argument("--max-docs", type=_positive_int, metavar="N", help="diagnose only the first N documents")
    p.add_argument("--json", metavar="PATH", help="also write the full reports as JSON")
    p.set_defaults(func=cmd_diagnose)

    # train
    p = sub.add_parser(
        "train", parents=[common], formatter_class=fmt,
        help="adapt a model with one recipe (full, lora, qlora, dora, ...)",
        description="Train one recipe on the train split of a corpus (evaluating on the valid split) and\n"
                    "save the adapter or model, the tokenizer, recipe.json and metrics.json to --output-dir.",
        epilog="examples:\n  lowres-adapt train ./mini-gpt2-ru --recipe lora-r16 --corpus ba.jsonl "
               "--output-dir runs/lora --max-steps 300\n  lowres-adapt train mistralai/Mistral-7B-v0.1 "
               "--recipe qlora --corpus hf:my/ba-corpus --output-dir runs/qlora",
    )
    p.add_argument("model", help="model folder or hub id")
    p.add_argument("--recipe", default="lora",
                   help="full, lora, qlora, dora, rslora or pissa, with an optional rank: lora-r16 (default: "
                        "lora); or a JSON dict for AdaptationRecipe.from_dict, e.g. '{\"recipe\": \"lora\", "
                        "\"r\": 16, \"alpha\": 32}'")
    _add_corpus(p, required=True)
    _add_splits(p)
    p.add_argument("--output-dir", required=True, help="where the trained weights and metrics go")
    p.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    p.add_argument("--max-steps", type=_positive_int, default=100, help="optimizer steps (default: 100)")
    p.add_argument("--block-size", type=_positive_int, default=256, help="tokens per training block (default: 256)")
    p.add_argument("--batch-size", type=_positive_int, default=8, help="blocks per step (default: 8)")
    p.add_argument("--learning-rate", type=float, help="default: the recipe's own")
    p.add_argument("--packing", choices=("isolated", "concatenated"), default="isolated",
                   help="isolated: packed documents kept apart (default); concatenated: the blocks of older runs")
    p.add_argument("--json", metavar="PATH", help="also write the run metrics as JSON")
    _add_loading(p, training=True)
    p.set_defaults(func=cmd_train)

    # evaluate
    p = sub.add_parser(
        "evaluate", parents=[common], formatter_class=fmt,
        help="perplexity in bits per byte, word and token perplexity, with bootstrap intervals",
        description="Score a corpus split with a model: every token once (rolling windows for long\n"
                    "documents), pooled bits per byte, word / byte / token perplexity, bootstrap CIs.",
        epilog="example:\n  lowres-adapt evaluate runs/lora --corpus ba.jsonl --split test",
    )
    p.add_argument("model", help="model folder, PEFT adapter folder or hub id")
    p.add_argument("--tokenizer", help="tokenizer path (default: the model's)")
    _add_corpus(p, required=True)
    _add_splits(p)
    p.add_argument("--split", choices=("train", "valid", "test", "all"), default="test",
                   help="which split to score (default: test; splits made as in 'train' and 'study')")
    p.add_argument("--max-docs", type=_positive_int, metavar="N", help="score only the first N documents")
    p.add_argument("--max-length", type=_positive_int, help="window length (default: the model's context)")
    p.add_argument("--stride", type=_positive_int, help="new tokens per window (default: disjoint windows)")
    p.add_argument("--batch-size", type=_positive_int, default=8, help="windows per forward pass (default: 8)")
    p.add_argument("--max-batch-tokens", type=_positive_int, default=16384,
                   help="tokens per forward pass, padding included (default: 16384; one window at least)")
    p.add_argument("--bootstrap-samples", type=int, default=1000, help="0 disables the CIs (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    p.add_argument("--json", metavar="PATH", help="also write the result (per-document records included)")
    _add_loading(p, training=False)
    p.set_defaults(func=cmd_evaluate)

    # drift
    p = sub.add_parser(
        "drift", parents=[common], formatter_class=fmt,
        help="language drift of texts, or of a model's generations from prompts",
        description="Measure language drift: give texts (--texts, one per line) or a model and prompts\n"
                    "(generations are made and checked). Reports line/word pass rate, drift rate, into\n"
                    "which languages it drifted.",
        epilog="examples:\n  lowres-adapt drift --texts generations.txt --language ba\n"
               "  lowres-adapt drift --model runs/lora --prompts prompts-ba.txt --max-new-tokens 64",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--texts", metavar="FILE", help="texts to check, one per line")
    src.add_argument("--model", help="model folder or hub id to generate from")
    p.add_argument("--prompts", metavar="FILE", help="prompts, one per line (needed with --model)")
    _add_language(p)
    p.add_argument("--backend", choices=("ngram", "fasttext", "auto"), default="ngram",
                   help="language identifier (default: ngram, whatever is installed; auto = ngram; fasttext "
                        "needs lowres-adapt[lid])")
    g = p.add_argument_group("generation (with --model), as lowres_adapt.generate")
    g.add_argument("--max-new-tokens", type=_positive_int, default=64, help="tokens to generate (default: 64)")
    g.add_argument("--seed", type=int, default=0, help="generation seed (default: 0)")
    g.add_argument("--do-sample", action="store_true", help="sample instead of greedy decoding (greedy small "
                                                            "models often repeat themselves into unscorable text)")
    g.add_argument("--temperature", type=_positive_float, help="sampling temperature (default 1.0; with --do-sample)")
    g.add_argument("--top-p", type=_unit_float, help="nucleus share in (0, 1] (default 1.0; with --do-sample)")
    g.add_argument("--top-k", type=_positive_int, help="the k likeliest tokens only (default: all; with --do-sample)")
    g.add_argument("--repetition-penalty", type=_positive_float, help="> 1 discourages repeats (default: none)")
    g.add_argument("--batch-size", type=_positive_int, default=8, help="prompts per generate call (default: 8)")
    p.add_argument("--json", metavar="PATH", help="also write the summary and per-text details as JSON")
    _add_loading(p, training=False)
    p.set_defaults(func=cmd_drift)

    # study
    p = sub.add_parser(
        "study", parents=[common], formatter_class=fmt,
        help="run a study grid (models x recipes x seeds) from a YAML config; resumable",
        description="Run a study from a YAML (or JSON) file whose keys are lowres_adapt.Study's arguments\n"
                    "(see examples/study.yaml). Finished runs in the output folder are reused; a run that\n"
                    "was killed restarts; failed runs are recorded and retried on the next call.",
        epilog="example:\n  lowres-adapt study examples/study.yaml --output-dir runs/my-study",
    )
    p.add_argument("config", help="YAML or JSON file with the Study's arguments")
    p.add_argument("--output-dir", help="overrides output_dir of the config")
    p.add_argument("--max-steps", type=_positive_int, help="overrides max_steps of the config")
    p.add_argument("--seeds", type=_int_list, help="overrides seeds, e.g. 0,1,2")
    p.add_argument("--dry-run", action="store_true", help="check the config and list the runs, run nothing")
    g = p.add_argument_group("running the grid on several processes, GPUs or machines (docs/study.md#cluster)")
    g.add_argument("--executor", choices=("local", "processes", "dask", "slurm"), default="local",
                   help="local: one cell after another here (default); processes: a local process pool; dask: a "
                        "dask cluster (--scheduler-address, else a LocalCluster); slurm: one SLURM job per cell "
                        "(submitit). dask and slurm need: pip install 'lowres-adapt[cluster]'")
    g.add_argument("--workers", type=_positive_int, help="cells at once (processes, dask LocalCluster, slurm array)")
    g.add_argument("--scheduler-address", help="dask scheduler, e.g. tcp://10.0.0.5:8786")
    g.add_argument("--partition", help="SLURM partition")
    g.add_argument("--gpus-per-cell", type=int, default=0,
                   help="GPUs each cell gets: CUDA_VISIBLE_DEVICES per local worker, the job's GPU request on "
                        "SLURM, a {'GPU': n} resource on dask (default: 0)")
    g.add_argument("--time-limit", help="SLURM time limit per cell: minutes, h:mm or h:mm:ss")
    g.add_argument("--plan", action="store_true",
                   help="print each cell's planned peak memory and whether it fits --gpu-memory, run nothing")
    g.add_argument("--gpu-memory", help="memory of one GPU, e.g. 24GiB or 80GB: checked before anything runs")
    p.set_defaults(func=cmd_study)

    # plan
    p = sub.add_parser(
        "plan", parents=[common], formatter_class=fmt,
        help="memory (and time) a recipe needs per device, before any download; fits or not",
        description="Plan one training step without weights: the model is built from its config on the meta\n"
                    "device and adapted as the recipe would; prints weights (NF4 with its constants, the layers\n"
                    "that stay unquantized), adapters, optimizer states and the step's gradients, activations,\n"
                    "logits and temporaries at its peak; with --gpu-memory whether it fits and the largest\n"
                    "batch that does. Exit code 4 when it does not fit.",
        epilog="examples:\n  lowres-adapt plan mistralai/Mistral-7B-v0.1 --recipe qlora --r 16 --block-size 2048 "
               "--gpu-memory 24GB\n  lowres-adapt plan ./my-model/config.json --recipe full --sharding zero3 "
               "--num-devices 8 --gpu-memory 80GB --batch-size 4",
    )
    p.add_argument("model", help="model folder, config.json or hub id (only the config is read)")
    p.add_argument("--recipe", default="lora", help="as for 'train': full, lora, qlora, dora, ..., lora-r16, or a JSON "
                                                  "dict (default: lora)")
    p.add_argument("--r", type=_positive_int, help="adapter rank (overrides the recipe's)")
    p.add_argument("--block-size", type=_positive_int, default=256, help="tokens per block (default: 256)")
    p.add_argument("--batch-size", type=_positive_int, default=8, help="blocks per step per device (default: 8)")
    p.add_argument("--gradient-accumulation-steps", type=_positive_int, default=1, help="(default: 1)")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"),
                   help="base weights (QLoRA: compute) dtype; default as train picks it on --device")
    p.add_argument("--mixed-precision", choices=("auto", "bf16", "fp16", "no"), default="auto",
                   help="autocast (default auto: bf16 on cuda, none on cpu)")
    p.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                   help="default: the recipe's (on for QLoRA)")
    p.add_argument("--optimizer", default="adamw",
                   help="adamw (torch fused, Trainer's default), adamw_torch, adamw_8bit, paged_adamw, "
                        "paged_adamw_8bit, sgd (default: adamw)")
    p.add_argument("--gpu-memory", metavar="SIZE", help="device memory, e.g. 24GB, 24GiB, 80G: gives the verdict")
    p.add_argument("--margin", type=float, default=0.1,
                   help="share of the device kept free for the CUDA context, allocator cache and workspaces "
                        "(default: 0.1)")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="device to plan for (default: cuda)")
    p.add_argument("--sharding", choices=("ddp", "zero1", "zero2", "zero3", "fsdp", "fsdp_grad_op"),
                   help="data parallel / DeepSpeed ZeRO stage / FSDP strategy across --num-devices")
    p.add_argument("--num-devices", type=_positive_int, default=1, help="devices to shard across (default: 1)")
    p.add_argument("--tflops", type=float, metavar="X",
                   help="achieved TFLOP/s per device, for a time ESTIMATE (e.g. peak x 0.4)")
    p.add_argument("--tokens", type=_positive_int, metavar="N", help="training tokens per device for the estimate")
    p.add_argument("--json", metavar="PATH", help="also write the plan as JSON")
    p.set_defaults(func=cmd_plan)
    return parser


def _add_loading(p: argparse.ArgumentParser, *, training: bool) -> None:
    """The loader's options, as Python's ``load=`` and ``model_kwargs=`` (see docs/recipes.md)."""
    g = p.add_argument_group("model loading (the library's one loader; see docs/recipes.md 'How models load')")
    if not training:
        g.add_argument("--load", choices=("fp32", "bf16", "fp16", "nf4", "fp4"),
                       help="how to hold the weights (default: bf16/fp16 on a GPU, fp32 on CPU; nf4 = QLoRA's base)")
    g.add_argument("--revision", help="hub revision (branch, tag or commit) of the model")
    g.add_argument("--attn-implementation", choices=("eager", "sdpa", "flash_attention_2", "flash_attention_3"),
                   help="attention kernel (default: transformers' choice)")
    g.add_argument("--device-map", help="from_pretrained device_map, e.g. auto (default: the library's policy)")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="run the model repository's own code (off unless given; recorded in the results)")


def _model_kwargs(args) -> dict[str, Any] | None:
    kwargs = {key: getattr(args, key) for key in ("revision", "attn_implementation", "device_map")
              if getattr(args, key, None) is not None}
    if getattr(args, "trust_remote_code", False):
        kwargs["trust_remote_code"] = True
    return kwargs or None


def _add_corpus(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--corpus", required=required, help=_CORPUS_HELP)
    p.add_argument("--text-field", default="text", help="JSONL / dataset field holding the text (default: text)")


def _add_splits(p: argparse.ArgumentParser) -> None:
    p.add_argument("--valid", type=float, default=0.05, help="valid share when splitting (default: 0.05)")
    p.add_argument("--test", type=float, default=0.05, help="test share when splitting (default: 0.05)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the document split (default: 0)")


def _add_language(p: argparse.ArgumentParser) -> None:
    p.add_argument("--language", default="ba", metavar="CODE_OR_FILE",
                   help="a built-in language code (default: ba; ba, ru, en, tt, kk), or a YAML/JSON file of "
                        "LanguageProfile fields for any other language (code, name, script, special_letters, "
                        "reference_languages, ...; see docs/cli.md)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str, high: float = float("inf")) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= high or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number in (0, {high:g}], got {text!r}" if high < float("inf")
                                         else f"expected a positive number, got {text!r}")
    return value


def _unit_float(text: str) -> float:
    return _positive_float(text, 1.0)


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas (e.g. 0,1,2), got {text!r}") from None


# --------------------------------------------------------------------------------------------- commands
def _texts_for(args, split: str) -> list[str]:
    from .study import corpus_splits

    valid = getattr(args, "valid", 0.05)
    test = getattr(args, "test", 0.05)
    seed = getattr(args, "split_seed", 0)
    if split == "all":
        from .data import has_splits, load_corpus

        if str(args.corpus).startswith("sample:") or has_splits(args.corpus):
            parts = corpus_splits(args.corpus, text_field=args.text_field)
            docs = parts["train"] + parts["valid"] + parts["test"]
        else:
            docs = load_corpus(args.corpus, args.text_field)
    else:
        docs = corpus_splits(args.corpus, text_field=args.text_field, valid=valid, test=test, seed=seed)[split]
    if getattr(args, "max_docs", None):
        docs = docs[: args.max_docs]
    if not docs:
        raise ValueError(f"the {split!r} split of {args.corpus!r} is empty")
    return docs


def _write_json(path: str | None, obj: Any) -> None:
    if path:
        from ._utils import atomic_write_json

        atomic_write_json(path, obj)
        _info(f"wrote {path}")


def _info(message: str) -> None:
    print(message, file=sys.stderr)


def _read_lines(path: str, what: str) -> list[str]:
    from ._utils import read_text_file

    text = read_text_file(path, f"{what} file", f"pass a UTF-8 text file with one {what[:-1]} per line")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ValueError(f"{what} file {path!r} is empty; pass a UTF-8 text file with one {what[:-1]} per line")
    return lines


def _recipe_spec(spec: str) -> Any:
    if not spec.strip().startswith("{"):
        return spec
    try:
        return json.loads(spec)
    except json.JSONDecodeError as e:
        raise ValueError(f"--recipe looks like JSON but does not parse: {e.msg}") from None


def _language(args):
    from .study import resolve_language

    return resolve_language(args.language)


def cmd_diagnose(args) -> int:
    from .study import load_parallel_file
    from .tokenization import compare_tokenizers

    language = _language(args)
    texts = _texts_for(args, args.split)
    parallel = load_parallel_file(args.parallel, language) if args.parallel else None
    table = compare_tokenizers(args.tokenizers, texts, language=language, parallel=parallel,
                               progress=not args.quiet)
    print(table.to_markdown())
    for rep in table.reports:
        for w in rep.warnings:
            print(f"warning ({rep.tokenizer_name}): {w}")
    _write_json(args.json, {"language": language.code, "n_documents": len(texts),
                            "reports": [r.to_dict() for r in table.reports]})
    return EXIT_OK


def cmd_train(args) -> int:
    from .study import corpus_splits, resolve_recipe

    recipe = resolve_recipe(_recipe_spec(args.recipe))
    splits = corpus_splits(args.corpus, text_field=args.text_field, valid=args.valid, test=args.test,
                           seed=args.split_seed)
    _info(f"training {recipe!r} on {len(splits['train'])} documents ({len(splits['valid'])} for evaluation)")
    run = recipe.train(args.model, splits["train"], eval_texts=splits["valid"] or None, output_dir=args.output_dir,
                       seed=args.seed, max_steps=args.max_steps, block_size=args.block_size,
                       batch_size=args.batch_size, learning_rate=args.learning_rate,
                       model_kwargs=_model_kwargs(args), packing=args.packing, disable_tqdm=args.quiet)
    m = run.metrics
    keys = ("train_loss", "eval_loss", "eval_perplexity", "trainable_params", "total_params", "train_tokens",
            "tokens_per_second", "wall_seconds", "peak_memory_bytes")
    for k in keys:
        if k in m:
            print(f"{k:>18}: {m[k]}")
    print(f"saved to {run.output_dir}")
    _write_json(args.json, m)
    return EXIT_OK


def cmd_evaluate(args) -> int:
    from .evaluation import PerplexityEvaluator

    texts = _texts_for(args, args.split)
    ev = PerplexityEvaluator(max_length=args.max_length, stride=args.stride, batch_size=args.batch_size,
                             max_batch_tokens=args.max_batch_tokens,
                             bootstrap_samples=args.bootstrap_samples, seed=args.seed, progress=not args.quiet)
    with warnings.catch_warnings():  # the caution about few documents is printed with the table below
        warnings.filterwarnings("ignore", message="the confidence intervals rest on")
        res = ev.evaluate(args.model, args.tokenizer, texts, load=args.load, model_kwargs=_model_kwargs(args))
    print(res.to_markdown())
    _write_json(args.json, res.to_dict())
    return EXIT_OK


def cmd_drift(args) -> int:
    from .drift import DriftDetector
    from .modeling import generate

    language = _language(args)
    detector = DriftDetector(target=language, backend=args.backend)
    sampling = {k: getattr(args, k) for k in ("temperature", "top_p", "top_k") if getattr(args, k) is not None}
    if sampling and not args.do_sample:
        flags = ", ".join("--" + k.replace("_", "-") for k in sampling)
        raise ValueError(f"{flags} apply when sampling; add --do-sample (greedy decoding ignores them)")
    if args.model:
        if not args.prompts:
            raise ValueError("--model needs --prompts FILE (one prompt per line) to generate from")
        prompts = _read_lines(args.prompts, "prompts")
        options = dict(sampling)
        if args.repetition_penalty is not None:
            options["repetition_penalty"] = args.repetition_penalty
        texts = generate(args.model, None, prompts, seed=args.seed, max_new_tokens=args.max_new_tokens,
                         do_sample=args.do_sample, batch_size=args.batch_size, load=args.load,
                         model_kwargs=_model_kwargs(args), **options)
    else:
        generation = [f for f, on in (("--prompts", args.prompts), ("--do-sample", args.do_sample),
                                      ("--repetition-penalty", args.repetition_penalty is not None)) if on]
        if generation:
            raise ValueError(f"{', '.join(generation)} go with --model; with --texts the texts are checked as they are")
        prompts, texts = None, _read_lines(args.texts, "texts")
    summary = detector.evaluate(texts)
    per_text = summary.pop("per_text")
    for key in ("line_pass_rate", "word_pass_rate", "drift_rate", "mean_target_share", "n_texts", "n_scorable",
                "drifted_into", "backend"):
        print(f"{key:>18}: {summary.get(key)}")
    _write_json(args.json, {**summary, "texts": texts, "prompts": prompts, "per_text": per_text})
    return EXIT_OK


def cmd_study(args) -> int:
    from .study import Study

    study = Study.from_config(args.config, output_dir=args.output_dir, max_steps=args.max_steps, seeds=args.seeds,
                              **({"progress": False} if args.quiet else {}))
    if args.dry_run:
        for note in study.check_inputs():  # paths exist, specs are well formed; no weights or documents read
            print(f"ok: {note}")
        print(f"{study!r}\n{len(study.plan())} runs:")
        for run_id in study.plan():
            print(f"  {run_id}")
        return EXIT_OK
    if args.plan or args.gpu_memory:
        if not args.gpu_memory:
            raise ValueError("--plan needs --gpu-memory, e.g. --gpu-memory 24GiB")
        from .study import plan_table

        rows = study.plan_memory(device_memory=args.gpu_memory)
        print(plan_table(rows))
        misfits = [r for r in rows if not r["fits"]]
        if misfits:
            _info(f"lowres-adapt: {len(misfits)} of {len(rows)} cells do not fit {args.gpu_memory}: "
                  f"{', '.join(r['run_id'] for r in misfits)}; lower batch_size/block_size or pick a smaller "
                  "recipe (nothing was submitted)")
            return EXIT_DOES_NOT_FIT
        if args.plan:
            return EXIT_OK
    from .study import make_executor

    with make_executor(args.executor, workers=args.workers, gpus_per_cell=args.gpus_per_cell,
                       scheduler_address=args.scheduler_address, partition=args.partition,
                       time_limit=args.time_limit, folder=study.output_dir / "slurm") as executor:
        results = study.run(executor=None if args.executor == "local" else executor)
    print(results.to_markdown())
    print(f"report: {results.paths['markdown']}")
    if results.failed:
        _info(f"lowres-adapt: {len(results.failed)} of {len(results.runs)} runs failed; see error.txt in their "
              f"folders under {study.output_dir / 'runs'} (run the command again to retry them)")
        return EXIT_RUNS_FAILED
    return EXIT_OK


def cmd_plan(args) -> int:
    from .planning import plan_memory
    from .study import resolve_recipe

    recipe = resolve_recipe(_recipe_spec(args.recipe))
    if args.r is not None:
        if not hasattr(recipe, "r"):
            raise ValueError(f"--r sets an adapter rank; recipe {recipe.name!r} has no adapters")
        recipe = recipe.copy(r=args.r)
    if (args.tflops is None) != (args.tokens is None):
        raise ValueError("a time estimate needs both --tflops (achieved TFLOP/s per device) and --tokens")
    if args.tflops is not None and args.tflops <= 0:
        raise ValueError(f"--tflops must be positive, got {args.tflops}")
    plan = plan_memory(args.model, recipe, batch_size=args.batch_size, block_size=args.block_size, dtype=args.dtype,
                       gradient_checkpointing=args.gradient_checkpointing, optimizer=args.optimizer,
                       device_memory=args.gpu_memory, device=args.device, mixed_precision=args.mixed_precision,
                       gradient_accumulation_steps=args.gradient_accumulation_steps, sharding=args.sharding,
                       num_devices=args.num_devices, margin=args.margin)
    st = plan.settings
    print(f"{args.model}: {recipe!r}\n{plan.parameters['trainable']:,} trainable of {plan.parameters['total']:,} "
          f"parameters; batch {st['batch_size']} x block {st['block_size']}, {st['dtype']} weights, autocast "
          f"{st['mixed_precision'] or 'off'}, checkpointing {'on' if st['gradient_checkpointing'] else 'off'}, "
          f"{st['optimizer']}, {st['attention']} attention on {st['device']}"
          + (f", {st['sharding']} x {st['num_devices']}" if st["sharding"] else "") + "\n")
    print(plan.to_markdown())
    per_token = plan.flops_per_step / plan.tokens_per_step
    print(f"\nstep FLOPs: {plan.flops_per_step:.3g} ({per_token:.3g} per token)")
    out = plan.to_dict()
    if args.tflops is not None:
        seconds = plan.estimate_seconds(args.tokens, args.tflops * 1e12)
        out["estimate_seconds"] = seconds
        print(f"time ESTIMATE for {args.tokens:,} tokens at {args.tflops:g} achieved TFLOP/s: {seconds / 3600:.2f} h "
              "(FLOPs / throughput; data loading, evaluation and the optimizer step not counted)")
    _write_json(args.json, out)
    return EXIT_DOES_NOT_FIT if plan.fits is False else EXIT_OK


# --------------------------------------------------------------------------------------------- main
@contextlib.contextmanager
def _quiet_libraries(enabled: bool, quiet: bool = False):
    """Library advice (attention masks, optional CPU kernels) buries the command's own output; --debug
    keeps it. With ``quiet`` (-q) transformers' and datasets' progress bars and log lines and library
    warnings go too. Everything is restored afterwards (``main`` may be called from Python)."""
    if not enabled and not quiet:
        yield
        return
    import datasets
    from datasets.utils import logging as ds_logging
    from transformers.utils import logging as hf_logging

    bnb = logging.getLogger("bitsandbytes")
    old = (bnb.level, hf_logging.get_verbosity(), ds_logging.get_verbosity(),
           hf_logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled())
    bnb.setLevel(logging.ERROR)
    hf_logging.set_verbosity_error()
    with warnings.catch_warnings():
        if quiet:
            ds_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
            datasets.disable_progress_bars()
            warnings.filterwarnings("ignore", module=r"(transformers|datasets|peft|torch|bitsandbytes|accelerate)\b")
        try:
            yield
        finally:
            bnb.setLevel(old[0])
            hf_logging.set_verbosity(old[1])
            ds_logging.set_verbosity(old[2])
            if old[3]:
                hf_logging.enable_progress_bar()
            if old[4]:
                datasets.enable_progress_bars()


def main(argv: list[str] | None = None) -> int:
    """Runs the ``lowres-adapt`` command line; returns the exit code.

    Example::

        >>> from lowres_adapt.cli import main
        >>> main(["study", "no/such/config.yaml"])                 # doctest: +SKIP
        lowres-adapt: error: study config 'no/such/config.yaml' does not exist
        1
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from .errors import LowresAdaptError

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        with _quiet_libraries(not args.debug, quiet=args.quiet):
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        _info("lowres-adapt: interrupted")
        return EXIT_INTERRUPTED
    except (LowresAdaptError, ValueError, TypeError, OSError, ImportError, KeyError, RuntimeError) as e:
        if args.debug:
            raise
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        _info(f"lowres-adapt: error: {message}" + ("" if isinstance(e, (LowresAdaptError, ValueError,
                                                                      FileNotFoundError))
                                                  else f" ({type(e).__name__}; --debug shows the traceback)"))
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
