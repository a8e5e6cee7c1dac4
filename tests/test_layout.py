"""The package layout: one subpackage per concept, imports that flow one way, a fast top-level import.

The import graph is built from the source (every import statement, inside functions too, outside
``if TYPE_CHECKING:``), so a cycle or an upward import fails here before it confuses a reader.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "lowres_adapt"

# Layers, top to bottom: a module may import its own layer's concepts (without a cycle) or lower ones.
LAYERS = [
    {"cli"},
    {"study"},
    {"planning", "recipes"},
    {"drift", "evaluation", "tokenization", "modeling"},
    {"data", "languages", "errors"},
    {"_utils"},
]
RANK = {concept: i for i, layer in enumerate(LAYERS) for concept in layer}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PKG.rglob("*.py")}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def imports_of(name: str) -> set[str]:
    """Modules of this package that module ``name`` imports (resolved to the module that runs)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_nodes(tree)
    package = name if _is_package(name) else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import sub` imports the module pkg.sub; `from pkg import name` imports pkg
            subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in MODULES]
            targets = subs or [mod]
            same_package = mod == package or (name.startswith(mod + ".") and _is_package_of(mod, name))
            if subs and same_package:
                pass  # `from . import _langid` inside drift runs drift._langid, not drift/__init__ again
            elif subs and mod in MODULES:
                targets = [*subs, mod]
        else:
            continue
        out.update(t for t in targets if t in MODULES and t != name)
    return out


def _is_package_of(pkg: str, name: str) -> bool:
    return name.rsplit(".", 1)[0] == pkg


GRAPH = {name: imports_of(name) for name in MODULES}


def concept(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None  # None: the top-level lowres_adapt/__init__


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if state.get(nxt) is None and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state.get(node) is None and (found := visit(node)):
            return found
    return None


def test_the_graph_sees_real_imports():
    # a second method: a few edges read off the source by hand
    assert "lowres_adapt.drift._langid" in GRAPH["lowres_adapt.drift.detector"]
    assert "lowres_adapt.modeling" in GRAPH["lowres_adapt.drift.detector"]
    assert "lowres_adapt.recipes" in GRAPH["lowres_adapt.planning.plan"]  # inside a function
    assert "lowres_adapt.modeling.generation" in GRAPH["lowres_adapt.modeling"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_modules():
    assert _cycle(GRAPH) is None


def test_no_import_cycle_between_concepts_and_imports_flow_down():
    concepts: dict[str, set[str]] = {}
    upward = []
    for name, targets in GRAPH.items():
        src = concept(name)
        if src is None:
            continue
        for t in targets:
            dst = concept(t)
            if dst is None or dst == src:
                continue
            concepts.setdefault(src, set()).add(dst)
            if RANK[dst] < RANK[src]:
                upward.append(f"{name} -> {t}")
    assert not upward, f"imports that go up a layer: {upward}"
    assert _cycle(concepts) is None, _cycle(concepts)


def test_private_modules_are_used_only_inside_their_subpackage():
    leaks = []
    for name, targets in GRAPH.items():
        for t in targets:
            parts = t.split(".")
            private = [i for i, p in enumerate(parts) if p.startswith("_")]
            if not private or private[0] == 1:  # lowres_adapt._utils: the shared top-level helpers
                continue
            owner = ".".join(parts[: private[0]])
            if not name.startswith(owner + ".") and name != owner:
                leaks.append(f"{name} -> {t}")
    assert not leaks, f"private modules used from another subpackage: {leaks}"


def test_layout_by_concept():
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert len(top) <= 6, top
    subpackages = sorted(p.parent.name for p in PKG.glob("*/__init__.py"))
    import lowres_adapt as la

    assert sorted(la.SUBPACKAGES) == subpackages
    prefixes = ("_plan_", "_study_", "_drift_", "_report_", "_vocab_", "_tokenizer_")
    named = [p.name for p in PKG.rglob("*.py") if p.name.startswith(prefixes)]
    assert not named


def test_type_checking_block_lists_every_lazy_name():
    import lowres_adapt as la

    tree = ast.parse((PKG / "__init__.py").read_text(encoding="utf-8"))
    seen = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                for alias in stmt.names:
                    seen[alias.name] = stmt.module
    assert seen == la._LAZY


def test_fresh_import_resolves_every_name_without_torch():
    code = (
        "import sys, lowres_adapt as la\n"
        "assert 'torch' not in sys.modules, 'import lowres_adapt imported torch'\n"
        "names = [n for n in la.__all__ if n != '__version__']\n"
        "missing = [n for n in names if getattr(la, n, None) is None]\n"
        "subs = [type(getattr(la, s)).__name__ for s in la.SUBPACKAGES]\n"
        "moved = [getattr(la, m).__name__ for m in la._MOVED_MODULES]\n"
        "print(len(names), missing, set(subs), len(moved))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    import lowres_adapt as la

    assert out[0] == str(len(la.__all__) - 1)
    assert out[1] == "[]"
    assert out[2] == "{'module'}"
    assert int(out[3]) == len(la._MOVED_MODULES)


@pytest.mark.parametrize("path", ["vocab.new_token_peft_kwargs", "stages.build_instruction_dataset",
                                  "evaluation.METRICS", "memory_plan.plan_for_run", "drift.generate",
                                  "tokenization.vocab.select_new_tokens"])
def test_documented_module_paths_resolve(path):
    import lowres_adapt as la

    obj = la
    for part in path.split("."):
        obj = getattr(obj, part)
    assert obj is not None


def test_test_only_helpers_stay_out_of_the_package():
    # the real-step measurement serves the planner's tests and benchmark; no user-facing function needs it
    shipped = [p.name for p in PKG.rglob("*.py") if "def measure_training_step" in p.read_text(encoding="utf-8")]
    assert not shipped
    assert "def measure_training_step" in (PKG.parents[1] / "benchmarks" / "_step_measure.py").read_text()
