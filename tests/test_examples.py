"""The example scripts: the demo preset and its overrides build the grid the README promises, the paper
preset builds the paper's grid without loading a model, and both scripts run end to end offline (with
tiny settings)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import lowres_adapt as la

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(autouse=True)
def _restore_library_logging():
    """The scripts quiet transformers, datasets and bitsandbytes for their users; undo it for later tests."""
    import logging

    import datasets
    from transformers.utils import logging as hf_logging

    bnb = logging.getLogger("bitsandbytes")
    state = (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled(),
             datasets.is_progress_bar_enabled(), bnb.level)
    yield
    hf_logging.set_verbosity(state[0])
    (hf_logging.enable_progress_bar if state[1] else hf_logging.disable_progress_bar)()
    (datasets.enable_progress_bars if state[2] else datasets.disable_progress_bars)()
    bnb.setLevel(state[3])


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bashkir_study():
    try:
        from lowres_adapt.recipes import LoRA  # noqa: F401
    except ImportError:
        pytest.skip("lowres_adapt.recipes is not available yet")
    return load_example("bashkir_study")


def test_overrides_and_paper_preset(bashkir_study, tmp_path):
    parse, make = bashkir_study.parse_args, bashkir_study.make_studies
    (study,) = make(parse(["--preset", "smoke", "--recipes", "lora-r16,dora", "--seeds", "3", "--max-steps", "7",
                           "--output-dir", str(tmp_path / "o")]))
    assert study.plan() == ["tiny-gpt2__lora-r16__s3", "tiny-gpt2__dora-r8__s3", "tiny-llama__lora-r16__s3",
                            "tiny-llama__dora-r8__s3"]
    assert study.max_steps == 7
    # the paper's grid: full fine-tuning for the small models, adapters at ranks 8 and 16 for the large ones
    full, adapters = make(parse(["--preset", "paper", "--corpus", "corpus.jsonl", "--output-dir", str(tmp_path)]))
    assert full.models == ["distilgpt2", "gpt2", "gpt2-medium"] and full.seeds == [0, 1, 2]
    assert len(full.plan()) == 9 and full.output_dir == tmp_path / "full"
    assert adapters.models == ["microsoft/phi-2", "Qwen/Qwen2.5-7B", "deepseek-ai/deepseek-llm-7b-base",
                               "mistralai/Mistral-7B-v0.1"]
    assert {r.split("__")[1] for r in adapters.plan()} == {"lora-r8", "lora-r16", "qlora-r8", "qlora-r16"}
    assert len(adapters.plan()) == 4 * 4 * 3
    # bad input: one line, exit code 1
    assert bashkir_study.main(["--preset", "paper"]) == 1
    assert bashkir_study.main(["--models", "m"]) == 1
    assert bashkir_study.main(["--recipes", "lorra", "--output-dir", str(tmp_path / "b")]) == 1

    # the default preset: the shipped pretrained base, full / LoRA / QLoRA on all linear layers, 2 seeds, the
    # shipped prompts and the Russian sample for retention; nothing is loaded or trained by building it
    (demo,) = make(parse(["--output-dir", str(tmp_path / "d")]))
    assert demo.models == ["sample:mini-gpt2-ru"]
    assert demo.plan() == [f"mini-gpt2-ru__{r}__s{s}" for r in ("full", "lora-r8", "qlora-r8") for s in (0, 1)]
    assert [getattr(r, "target_modules", None) for r in demo.recipes] == [None, "all-linear", "all-linear"]
    assert demo.prompts == "sample:ba" and demo.reference_corpus == "sample:ru" and demo.num_prompts == 24
    assert (demo.max_steps, demo.block_size, demo.batch_size, demo.learning_rate) == (60, 128, 8, 1e-3)
    assert demo.generation["do_sample"] is True


def test_demo_runs_end_to_end(bashkir_study, tmp_path, capsys):
    """The demo script itself, one recipe and seed, two steps: table, report files, the plain note; and
    the default grid: two tiny models x full/LoRA/QLoRA x seeds 0, 1, into runs/bashkir-demo by default."""
    out = tmp_path / "demo"
    assert bashkir_study.main(["--preset", "smoke", "--recipes", "full", "--seeds", "0", "--max-steps", "2",
                               "--output-dir", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "not the paper's numbers" in printed and f"Report: {out / 'results.md'}" in printed
    assert "| tiny-gpt2 | full |" in printed and "| tiny-llama | full |" in printed
    for name in ("results.md", "results.csv", "results.json", "plots/bpb_vs_trainable_params.png",
                 "plots/bpb_by_model.png"):
        assert (out / name).is_file(), name
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert len(res["records"]) == 2 and all(r["status"] == "ok" for r in res["records"])
    # retention on the Russian sample: before = the base model's number, after = the run's
    rec = next(r for r in res["records"] if r["model_label"] == "tiny-gpt2")
    assert rec["reference"]["bits_per_byte_before"] == pytest.approx(
        res["base"]["tiny-gpt2"]["reference"]["bits_per_byte_after"])

    # the default grid on the same folder's models (built once, reused)
    assert bashkir_study.parse_args([]).output_dir is None and bashkir_study.parse_args([]).preset == "demo"
    (study,) = bashkir_study.make_studies(bashkir_study.parse_args(["--preset", "smoke", "--output-dir", str(out)]))
    assert study.plan() == [f"tiny-{m}__{r}__s{s}" for m in ("gpt2", "llama") for r in ("full", "lora-r8", "qlora-r8")
                            for s in (0, 1)]
    assert study.reference_corpus == "sample:ru" and study.language is la.BASHKIR
    # the tiny checkpoints: GPT-2 and Llama style sharing one tokenizer; the splits are disjoint
    from transformers import AutoConfig, AutoTokenizer

    assert [AutoConfig.from_pretrained(m).model_type for m in study.models] == ["gpt2", "llama"]
    vocab = [AutoTokenizer.from_pretrained(m).get_vocab() for m in study.models]
    assert vocab[0] == vocab[1]
    splits = study.corpus
    assert not set(splits["test"]) & set(splits["train"])
    assert sum(map(len, splits.values())) == len(la.sample_corpus("ba"))


def test_extend_to_new_language_runs_offline(tmp_path, capsys):
    try:
        from lowres_adapt.recipes import LoRA  # noqa: F401
    except ImportError:
        pytest.skip("lowres_adapt.recipes is not available yet")
    example = load_example("extend_to_new_language")
    assert example.main(["--max-steps", "2", "--output-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    # no library change: the example's own profile is used, and nothing is registered
    assert report["language"]["code"] == "ky" and "ky" not in la.available_languages()
    assert set(report["diagnostics"]["letter_coverage"]) == set("ңөү")
    assert report["diagnostics"]["n_texts"] == len(report["base"]["per_document"]) >= 1
    assert report["base"]["n_documents"] == report["lora"]["n_documents"] >= 1
    assert f"{report['lora']['bits_per_byte']:.3f}" in printed and "Kyrgyz" in printed
    assert (tmp_path / "lora" / "adapter_config.json").is_file()

