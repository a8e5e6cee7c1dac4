"""The runnable examples in public docstrings really run and print what they claim."""

from __future__ import annotations

import doctest
import importlib

import pytest

# Modules whose examples are cheap enough for every test run.
MODULES = ["lowres_adapt.languages", "lowres_adapt.data", "lowres_adapt.toy"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name} has no docstring example"
    assert result.failed == 0
