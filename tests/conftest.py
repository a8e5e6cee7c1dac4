"""Shared fixtures: tiny tokenizers and models built in-process, and the optional shared data folder.

Nothing here touches the network. Session-scoped fixtures are built once per test run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LOWRES_ADAPT_SHARED", ROOT.parent / "shared"))
SHARED_DATA = SHARED / "data" / "bashkir"
MINI_GPT2_RU = SHARED / "models" / "mini-gpt2-ru"
# benchmarks/_step_measure.py: the real-step memory measurement the planner's tests share with its benchmark
sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data/bashkir, or skip."""
    if not (SHARED_DATA / "corpus-train.jsonl").exists():
        pytest.skip(f"shared data folder absent: {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mini_gpt2_ru() -> Path:
    """../shared/models/mini-gpt2-ru (float32), else the copy shipped in the package (float16 on disk)."""
    if (MINI_GPT2_RU / "config.json").exists():
        return MINI_GPT2_RU
    import lowres_adapt as la

    return la.sample_model_path("mini-gpt2-ru")


@pytest.fixture(scope="session")
def ba_docs() -> list[str]:
    import lowres_adapt as la

    return la.sample_corpus("ba")


@pytest.fixture(scope="session")
def tiny_tokenizer(ba_docs):
    """Byte-level BPE (GPT-2 style) trained on the shipped Bashkir sample."""
    import lowres_adapt as la

    return la.train_tokenizer(ba_docs, vocab_size=400)


@pytest.fixture(scope="session")
def tiny_gpt2_path(tmp_path_factory, tiny_tokenizer) -> Path:
    import lowres_adapt as la

    return la.save_tiny_checkpoint(tmp_path_factory.mktemp("tiny-gpt2"), "gpt2", tokenizer=tiny_tokenizer,
                                   hidden_size=32, num_layers=2, num_heads=2, max_positions=128)


@pytest.fixture(scope="session")
def tiny_llama_path(tmp_path_factory, tiny_tokenizer) -> Path:
    import lowres_adapt as la

    return la.save_tiny_checkpoint(tmp_path_factory.mktemp("tiny-llama"), "llama", tokenizer=tiny_tokenizer,
                                   hidden_size=32, num_layers=2, num_heads=2, max_positions=128)
