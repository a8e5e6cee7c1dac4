"""Another agglutinative language in user code: Kyrgyz, with no change inside the library.

Defines a ``LanguageProfile`` for Kyrgyz, then runs the four steps of the Bashkir study on a Kyrgyz corpus:
tokenizer diagnostics (special-letter coverage, fertility), one adaptation recipe (LoRA), evaluation
(bits per byte and word perplexity with intervals, before and after) and language drift of generations.

Commands (from the repository root)::

    # offline: a tiny model and a small Kyrgyz demo corpus written into this script
    python examples/extend_to_new_language.py

    # your own corpus and base model (a .txt/.jsonl file or folder, an 'hf:' spec; a path or hub id)
    python examples/extend_to_new_language.py --corpus kyrgyz.jsonl --model ../shared/models/mini-gpt2-ru \\
        --max-steps 100 --output-dir runs/kyrgyz

    # the same as a full study (models x recipes x seeds, reports and plots): pass the profile to Study
    #   la.Study(models=[...], recipes=["full", "lora"], corpus="kyrgyz.jsonl", language=KYRGYZ, ...)

The demo corpus is a few paragraphs of simple Kyrgyz written for this example: enough to exercise every
step, far too little to adapt a real model. (Kyrgyz is not built in; Tatar and Kazakh are, as Bashkir's
close relatives for the drift detector, and ``la.get_language("tt")`` shows how such a profile looks.)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import lowres_adapt as la

# The only thing a new language needs: its profile. special_letters are the letters the language has
# beyond its script's reference language (here Russian Cyrillic); diagnostics check that the tokenizer
# keeps them whole, and the drift detector uses them as evidence for the language.
KYRGYZ = la.LanguageProfile(
    code="ky",
    name="Kyrgyz",
    script="Cyrillic",
    special_letters="ңөү",
    reference_languages=("ru", "en"),  # languages a base model probably knows
    confusable_languages=("kk",),  # a close relative the language-ID may confuse it with
    iso639_3="kir",
)

DEMO_CORPUS = """\
Бишкек — Кыргыз Республикасынын борбору. Шаар Чүй өрөөнүндө жайгашкан. Анда көп музейлер, театрлар жана университеттер бар. Ала-Тоо аянты шаардын эң белгилүү жери.

Биздин айылда мектеп, китепкана жана дүкөн бар. Жайында балдар дарыяда сууга түшөт. Күз келгенде алар кайра мектепке барышат. Айыл эли бакчада картөшкө өстүрөт.

Кыргыз тили түрк тилдеринин тобуна кирет. Аны миллиондогон адамдар сүйлөйт. Кыргыз адабиятынын бай тарыхы бар. Улуулар жаштар эне тилин үйрөнүшү керек деп эсептешет.

Апам даамдуу боорсок бышырды. Биз бүт үй-бүлө менен дасторкон четине отурдук. Атам чай куйду. Кечинде коңшулар да конокко келишти.

Жазында кар эрийт, куштар кайтып келет. Тоо этегинде алгачкы гүлдөр көрүнөт. Талааларда тракторлор иштей баштайт. Аба жылыйт, күндөр узарат.

«Манас» — кыргыз элинин улуу эпосу. Аны манасчылар жатка айтышат. Эпосто баатырлардын жана элдин тагдыры баяндалат. Ар бир кыргыз баласы Манас жөнүндө билет.

Ысык-Көл — Кыргызстандагы эң чоң көл. Жайында анын жээгине көп туристтер келет. Көлдүн суусу таза жана тунук. Айланасында бийик тоолор турат.

Кышында күндөр кыска, түндөр узун болот. Балдар чана тээп, тоодон сыйгаланышат. Үйдө меш жылуу, чоң эне байпак токуйт. Терезенин сыртында бороон улуйт.

Менин агам ооруканада дарыгер болуп иштейт. Ал күн сайын көп бейтаптарды карайт. Жумушу оор, бирок керектүү. Адамдар ага ыракмат айтышат.

Эртең менен эрте турам, жуунам жана тамактанам. Андан кийин автобус менен жумушка барам. Жумушта күнү бою компьютердин алдында отурам. Кечинде китеп окуйм же досторум менен жолугам.

Китепканага жаңы китептер келди. Окуучулар жомоктор менен ырлар жыйнагын алууга шашышат. Китепканачы аларга эң кызыктуу китептерди көрсөтөт. Окуу залында тынчтык өкүм сүрөт.

Көчмөн элдин турмушунда боз үй маанилүү орунду ээлейт. Аны тез эле тигип, тез эле жыйнап алууга болот. Боз үйдүн ичи жайында салкын, кышында жылуу. Азыр да той-тамашада боз үй тигилет.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", help="Kyrgyz corpus (default: the demo corpus in this script)")
    p.add_argument("--model", help="base model path or hub id (default: a tiny GPT-2 built offline)")
    p.add_argument("--max-steps", type=int, default=20, help="LoRA training steps (default 20)")
    p.add_argument("--output-dir", default=None, help="where the adapter and report.json go (default: a temp folder)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_libraries()
    out = Path(args.output_dir or tempfile.mkdtemp(prefix="kyrgyz-"))
    out.mkdir(parents=True, exist_ok=True)

    # 1. Data: any corpus format load_corpus reads; document-level split, independent of the tokenizer.
    if args.corpus:
        docs = la.load_corpus(args.corpus)
    else:
        docs = [d.strip() for d in DEMO_CORPUS.split("\n\n") if d.strip()]
    splits = la.split_documents(docs, valid=0.15, test=0.2, seed=0)
    print(f"{KYRGYZ.name}: {len(docs)} documents -> train {len(splits['train'])}, "
          f"valid {len(splits['valid'])}, test {len(splits['test'])} (split {la.split_fingerprint(splits)})")

    # 2. Base model: yours, or a tiny one with a tokenizer trained on the train split (offline).
    model_path = args.model
    if model_path is None:
        tokenizer = la.train_tokenizer(splits["train"], vocab_size=400)
        model_path = str(la.save_tiny_checkpoint(out / "tiny-base", "gpt2", tokenizer=tokenizer, hidden_size=64,
                                                 num_layers=2, num_heads=4, max_positions=128, seed=0))

    # 3. Tokenizer diagnostics: does the tokenizer keep ң ө ү whole?
    diag = la.diagnose_tokenizer(model_path, splits["test"], language=KYRGYZ)
    d = diag.to_dict()
    print(f"\nTokenizer: fertility {d['fertility']:.2f} tokens/word, byte fallback {d['byte_fallback_rate']:.1%}, "
          f"round trip {'ok' if d['roundtrip_ok'] else 'BROKEN'}")
    print("Letters kept whole: " + ", ".join(
        f"{c} {v['whole_share']:.0%}" for c, v in d["letter_coverage"].items() if v["whole_share"] is not None))
    for w in d["warnings"]:
        print(f"  warning: {w}")

    # 4. Evaluate the base, adapt with LoRA, evaluate again (bits per byte compares across tokenizers).
    from transformers import AutoModelForCausalLM, AutoTokenizer

    evaluator = la.PerplexityEvaluator(bootstrap_samples=200, progress=False)
    base_model = AutoModelForCausalLM.from_pretrained(model_path)
    base_tok = AutoTokenizer.from_pretrained(model_path)
    before = evaluator.evaluate(base_model, base_tok, splits["test"])
    lr = 2e-3 if args.model is None else None  # a tiny random model needs a large step to move
    run = la.LoRA(r=8).train(model_path, splits["train"], splits["valid"], output_dir=out / "lora", seed=0,
                             max_steps=args.max_steps, block_size=64, batch_size=4, learning_rate=lr)
    after = evaluator.evaluate(run.model, run.tokenizer, splits["test"])
    comparison = la.compare_results(before, after)
    lo, hi = comparison["confidence_interval"]
    print(f"\nBits per byte: base {before.bits_per_byte:.3f} -> LoRA {after.bits_per_byte:.3f} "
          f"(difference {comparison['difference']:+.3f}, interval [{lo:+.3f}, {hi:+.3f}], "
          f"better: {comparison['better'] or 'not distinguishable'}); "
          f"word perplexity {before.word_perplexity:.3g} -> {after.word_perplexity:.3g}")

    # 5. Drift: do generations from Kyrgyz prompts stay in Kyrgyz?
    prompts = [" ".join(doc.split()[:4]) for doc in splits["test"]]
    generations = la.generate(run.model, run.tokenizer, prompts, seed=0, max_new_tokens=24)
    # the n-gram backend (the default) learns Kyrgyz from the training split: no extra package needed
    drift = la.DriftDetector(target=KYRGYZ).fit({KYRGYZ.code: splits["train"]}).evaluate(generations)
    print(f"Drift: {drift['n_texts']} generations, line pass rate {_pct(drift['line_pass_rate'])}, "
          f"drift rate {_pct(drift['drift_rate'])}")

    report = {"language": KYRGYZ.to_dict(), "split_fingerprint": la.split_fingerprint(splits),
              "diagnostics": d, "base": before.to_dict(), "lora": after.to_dict(),
              "comparison": comparison, "train": run.metrics,
              "drift": {k: v for k, v in drift.items() if k != "per_text"},
              "generations": [{"prompt": p, "continuation": g} for p, g in zip(prompts, generations, strict=True)]}
    (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    print(f"\nReport: {out / 'report.json'}; adapter: {out / 'lora'}")
    if args.model is None:
        print("(A tiny model trained on a dozen paragraphs: this shows the steps, not a useful Kyrgyz model.)")
    return 0


def quiet_libraries() -> None:
    """Keeps the output to this script's lines and the training progress bar."""
    import logging

    import datasets
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)


def _pct(x: float | None) -> str:
    return "n/a (no scorable text)" if x is None else f"{x:.0%}"


if __name__ == "__main__":
    sys.exit(main())
