"""The runnable examples in public docstrings really run and print what they claim."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

from lowres_adapt import languages

# Every module of the package: the examples use tiny in-process models, so they are cheap enough for each
# run. A public module (no ``_`` in its path; the CLI aside, which tests/test_cli.py runs) must have one.
PACKAGE_ROOT = Path(languages.__file__).parent
MODULES = sorted(
    ".".join(("lowres_adapt", *p.relative_to(PACKAGE_ROOT).with_suffix("").parts)).removesuffix(".__init__")
    for p in PACKAGE_ROOT.rglob("*.py")
)
NEEDS_EXAMPLE = [m for m in MODULES if not any(part.startswith("_") for part in m.split(".")[1:])
                 and m != "lowres_adapt.cli"]


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
    if name in NEEDS_EXAMPLE:
        assert result.attempted > 0, f"{name} has no docstring example"
    assert result.failed == 0
