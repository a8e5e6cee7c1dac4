"""The runnable examples in public docstrings really run and print what they claim."""

from __future__ import annotations

import doctest
import importlib

import pytest

from lowres_adapt import languages

# Every public module: the examples use tiny in-process models, so they are cheap enough for each run.
MODULES = [
    "lowres_adapt",
    "lowres_adapt.languages",
    "lowres_adapt.data",
    "lowres_adapt.samples",
    "lowres_adapt.toy",
    "lowres_adapt.recipes",
    "lowres_adapt.recipes.base",
    "lowres_adapt.recipes._targets",  # find_target_modules (public as la.find_target_modules)
    "lowres_adapt.recipes.full",
    "lowres_adapt.recipes.lora",
    "lowres_adapt.tokenizer_diagnostics",
    "lowres_adapt.tokenizer_loading",
    "lowres_adapt.evaluation",
    "lowres_adapt.drift",
    "lowres_adapt._drift_results",  # DriftAnalysis.explain, flagged_examples
    "lowres_adapt._drift_text",
    "lowres_adapt._drift_scoring",
    "lowres_adapt.generation",
    "lowres_adapt.vocab",
    "lowres_adapt.stages",
    "lowres_adapt.downstream",
    "lowres_adapt.study",
    "lowres_adapt.memory_plan",
    "lowres_adapt._plan_model",  # nf4_bytes: the NF4 storage rule, by example
]


@pytest.fixture(autouse=True)
def _restore_language_registry():
    """Examples may register languages (e.g. Tatar); later tests must see the built-in registry."""
    saved = dict(languages._REGISTRY)
    yield
    languages._REGISTRY.clear()
    languages._REGISTRY.update(saved)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name} has no docstring example"
    assert result.failed == 0
