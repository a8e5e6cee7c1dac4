"""The ``lowres-adapt`` command: help and version, exit codes, one-line errors, and each subcommand's
numbers checked against the library call it wraps."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lowres_adapt as la
from lowres_adapt.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE, main

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("diagnose", "train", "evaluate", "drift", "study")


def needs_recipes():
    try:
        from lowres_adapt.recipes import LoRA  # noqa: F401
    except ImportError:
        pytest.skip("lowres_adapt.recipes is not available yet")


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory, ba_docs) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "ba.jsonl"
    path.write_text("".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in ba_docs), encoding="utf-8")
    return path


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"lowres-adapt {la.__version__}"
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and all(c in out for c in COMMANDS)
    for command in COMMANDS:
        with pytest.raises(SystemExit) as e:
            main([command, "--help"])
        out = capsys.readouterr().out
        assert e.value.code == 0 and "example" in out and "--debug" in out, command
    assert main([]) == EXIT_USAGE  # no command: the help, and a usage exit code
    assert "<command>" in capsys.readouterr().out


def test_console_script_is_installed():
    """The installed entry point answers --version without importing torch (fast)."""
    code = "import sys; from lowres_adapt.cli import main; main(['--version'])"
    out = subprocess.run([sys.executable, "-c", code + "\n"], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == f"lowres-adapt {la.__version__}"
    probe = "import sys, lowres_adapt.cli as c; c.build_parser(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60).stdout.strip() == "False"


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "m", "--corpus", "c.jsonl", "--output-dir", "o", "--max-steps", "0"])
    assert e.value.code == EXIT_USAGE
    assert "expected a positive integer, got '0'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["study", "x.yaml", "--seeds", "0,a"])
    assert e.value.code == EXIT_USAGE


@pytest.mark.parametrize(("config", "expected"), [
    ("recipes: [full, lorra]", ["unknown recipe 'lorra'", "did you mean 'lora'", "known: full, lora, qlora"]),
    ("recipes: [full]\nmax_step: 5", ["unknown study option 'max_step'", "did you mean 'max_steps'"]),
    ("recipes: [full]\nlanguage: bashkirr", ["unknown language 'bashkirr'", "known: ba, en, kk, ru, tt"]),
    ("recipes: [full]\nevaluation: {bootstrap: 5}", ["unknown evaluation option 'bootstrap'",
                                                     "bootstrap_samples"]),
])
def test_bad_config_is_one_line_error(tmp_path, capsys, config, expected):
    needs_recipes()
    cfg = tmp_path / "study.yaml"
    cfg.write_text(f"models: [tiny:gpt2]\ncorpus: sample:ba\n{config}\n", encoding="utf-8")
    assert main(["study", str(cfg), "--dry-run"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("lowres-adapt: error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for piece in expected:
        assert piece in err, (piece, err)
    with pytest.raises(Exception):  # noqa: B017 (--debug re-raises: the traceback is there on request)
        main(["study", str(cfg), "--dry-run", "--debug"])


def test_missing_files_and_small_corpus(tmp_path, capsys):
    needs_recipes()
    assert main(["study", str(tmp_path / "nope.yaml")]) == EXIT_ERROR
    assert "nope.yaml' does not exist" in capsys.readouterr().err
    cfg = tmp_path / "study.yaml"
    cfg.write_text("models: [tiny:gpt2]\nrecipes: [full]\ncorpus: [one doc, two docs]\ntest: 0.05\n",
                   encoding="utf-8")
    assert main(["study", str(cfg), "--output-dir", str(tmp_path / "o")]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "too small for the requested splits" in err and len(err.strip().splitlines()) == 1


def test_study_dry_run_lists_the_plan(capsys):
    needs_recipes()
    cfg = ROOT / "examples" / "study.yaml"
    assert main(["study", str(cfg), "--dry-run", "--seeds", "3", "--max-steps", "2"]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    expected = la.Study.from_config(cfg, seeds=[3]).plan()
    assert [ln.strip() for ln in lines[2:]] == expected and len(expected) == 6
    assert lines[1] == "6 runs:" and "max_steps=2" in lines[0]


def test_diagnose_matches_library(tiny_gpt2_path, corpus_file, ba_docs, tmp_path, capsys):
    out_json = tmp_path / "d.json"
    assert main(["diagnose", str(tiny_gpt2_path), "--corpus", str(corpus_file), "--json", str(out_json),
                 "--quiet"]) == EXIT_OK
    printed = capsys.readouterr().out
    got = json.loads(out_json.read_text(encoding="utf-8"))
    want = la.diagnose_tokenizer(str(tiny_gpt2_path), ba_docs, language=la.BASHKIR, progress=False).to_dict()
    assert got["n_documents"] == len(ba_docs)
    assert got["reports"][0]["fertility"] == pytest.approx(want["fertility"])
    assert got["reports"][0]["letter_coverage"]["ҡ"]["count"] == want["letter_coverage"]["ҡ"]["count"] > 0
    assert f"{want['fertility']:.2f}" in printed


def test_evaluate_matches_library(tiny_gpt2_path, corpus_file, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_json = tmp_path / "e.json"
    assert main(["evaluate", str(tiny_gpt2_path), "--corpus", str(corpus_file), "--split", "test", "--valid", "0.1",
                 "--test", "0.1", "--bootstrap-samples", "0", "--json", str(out_json), "--quiet"]) == EXIT_OK
    got = json.loads(out_json.read_text(encoding="utf-8"))
    test_docs = la.split_documents(la.load_corpus(corpus_file), valid=0.1, test=0.1, seed=0)["test"]
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_path)
    tok = AutoTokenizer.from_pretrained(tiny_gpt2_path)
    want = la.PerplexityEvaluator(bootstrap_samples=0, progress=False).evaluate(model, tok, test_docs)
    assert got["n_documents"] == len(test_docs) and got["n_bytes"] == sum(len(d.encode()) for d in test_docs)
    assert got["bits_per_byte"] == pytest.approx(want.bits_per_byte, rel=1e-6)


def test_drift_texts_matches_library(tmp_path, ba_docs, capsys):
    texts = [ba_docs[0].splitlines()[0][:120], "Это предложение написано по-русски, а не по-башкирски.",
             "This sentence is plainly English."]
    path = tmp_path / "t.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out_json = tmp_path / "dr.json"
    assert main(["drift", "--texts", str(path), "--backend", "ngram", "--json", str(out_json), "-q"]) == EXIT_OK
    got = json.loads(out_json.read_text(encoding="utf-8"))
    want = la.DriftDetector(target=la.BASHKIR, backend="ngram").evaluate(texts)
    assert got["n_texts"] == 3 and got["line_pass_rate"] == pytest.approx(want["line_pass_rate"])
    assert got["texts"] == texts
    assert main(["drift", "--model", "x"]) == EXIT_ERROR  # generation needs prompts
    assert "--model needs --prompts" in capsys.readouterr().err


def test_train_writes_model_and_metrics(tiny_gpt2_path, corpus_file, tmp_path, capsys):
    needs_recipes()
    out = tmp_path / "run"
    assert main(["train", str(tiny_gpt2_path), "--recipe", "lora-r4", "--corpus", str(corpus_file),
                 "--output-dir", str(out), "--max-steps", "2", "--block-size", "32", "--batch-size", "2",
                 "--json", str(tmp_path / "m.json"), "-q"]) == EXIT_OK
    metrics = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert (out / "adapter_config.json").is_file()
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4
    assert 0 < metrics["trainable_params"] < metrics["total_params"]
    assert f"saved to {out}" in capsys.readouterr().out
    assert main(["train", str(tiny_gpt2_path), "--recipe", "lora-x", "--corpus", str(corpus_file),
                 "--output-dir", str(out)]) == EXIT_ERROR
    assert "unknown recipe 'lora-x'" in capsys.readouterr().err


def test_study_runs_and_refuses_other_settings(tmp_path, capsys):
    needs_recipes()
    cfg = tmp_path / "s.yaml"
    cfg.write_text(textwrap.dedent("""
        models: [tiny:gpt2]
        recipes: [full]
        seeds: [0]
        corpus: sample:ba
        max_steps: 2
        block_size: 32
        batch_size: 2
        evaluate_base: false
        evaluation: {bootstrap_samples: 0}
        generation: {max_new_tokens: 4}
        num_prompts: 2
    """), encoding="utf-8")
    out = tmp_path / "o"
    assert main(["study", str(cfg), "--output-dir", str(out), "-q"]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "| tiny-gpt2 | full |" in printed and f"report: {out / 'results.md'}" in printed
    for name in ("results.md", "results.csv", "results.json", "study.json"):
        assert (out / name).is_file(), name
    # the same folder with other settings: refused with the difference named
    assert main(["study", str(cfg), "--output-dir", str(out), "--max-steps", "3", "-q"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "holds a study with different settings" in err and "max_steps" in err
