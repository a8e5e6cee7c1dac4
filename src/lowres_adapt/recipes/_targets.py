"""Which modules LoRA targets: attention or all-linear projections of any architecture, found by walking
the model (never the LM head), and the check that user-given targets exist."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ..modeling import is_peft

logger = logging.getLogger(__name__)

# A parent module whose name holds one of these words is an attention block (GPT-2 "attn", Llama
# "self_attn", Falcon "self_attention", GPT-NeoX "attention", ...); class names are checked too.
_ATTENTION_WORDS = ("attn", "attention")

# ------------------------------------------------------------------------------------ target modules
def find_target_modules(model, which: str = "attention") -> list[str]:
    """Returns the module-name suffixes a LoRA adapter should target in ``model``.

    ``which="attention"`` finds the attention projections of whatever architecture is in hand (GPT-2's
    Conv1D ``attn.c_attn``/``attn.c_proj``, Llama/Mistral/Qwen2 ``q_proj``/``k_proj``/``v_proj``/``o_proj``,
    Phi's ``dense``, Falcon's ``query_key_value``, ...): linear layers inside a module named or typed as
    attention. ``which="all-linear"`` adds the MLP projections; the LM head is never targeted. Each suffix
    is the shortest that matches only chosen layers under PEFT's matching (so GPT-2's MLP ``c_proj`` is
    not caught by the attention ``c_proj``). In a multimodal wrapper (``Gemma3ForConditionalGeneration``,
    ...) only the language model is adapted, never the vision tower or its projector. When nothing
    matches, ``ValueError`` lists the model's layers.

    Example::

        >>> import lowres_adapt as la
        >>> la.find_target_modules(la.build_tiny_model("gpt2", vocab_size=50, hidden_size=16))
        ['attn.c_proj', 'c_attn']
        >>> la.find_target_modules(la.build_tiny_model("llama", vocab_size=50, hidden_size=16), "all-linear")
        ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']
    """
    if which not in ("attention", "all-linear"):
        raise ValueError(f"which must be 'attention' or 'all-linear', got {which!r}")
    base = model.get_base_model() if is_peft(model) else model
    linear = _linear_layers(base)
    language = _language_model_prefix(base)
    in_language = {name for name in linear if name.startswith(language)}
    if which == "all-linear":
        chosen = in_language
    else:
        modules = dict(base.named_modules())
        chosen = {name for name in in_language if _inside_attention(name, modules)}
    if not chosen:
        kinds = sorted({f"{n.rsplit('.', 1)[-1]} ({type(m).__name__})" for n, m in base.named_modules() if n})
        raise ValueError(f"found no {which} projections to adapt in {type(base).__name__}; its modules are: "
                         f"{kinds[:60]}{' ...' if len(kinds) > 60 else ''}. Pass target_modules=[...] explicitly")
    return sorted(_shortest_suffixes(chosen, set(linear) - chosen))


def check_target_modules(model, targets: Sequence[str]) -> None:
    """Raises ``ValueError`` listing the model's linear layers when a name in ``targets`` matches none."""
    base = model.get_base_model() if is_peft(model) else model
    names = [n for n, _ in base.named_modules() if n]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        leaves = sorted({n.rsplit(".", 1)[-1] for n in _linear_layers(base)})
        raise ValueError(f"target_modules {missing} match no module of {type(base).__name__}; its linear layers "
                         f"are {leaves}; or use target_modules='auto' / 'all-linear'")


def _language_model_prefix(model) -> str:
    """The module path (with a trailing dot) of the language model inside a multimodal wrapper such as
    ``Gemma3ForConditionalGeneration`` (transformers' ``get_decoder``), so that a vision or audio tower is
    never adapted; ``""`` when the whole model is the language model's."""
    try:
        decoder = model.get_decoder()
    except (AttributeError, NotImplementedError, ValueError):
        return ""
    if decoder is None or decoder is model:
        return ""
    for name, module in model.named_modules():
        if module is decoder:
            return name + "."
    return ""


def non_language_modules(model) -> list[str]:
    """Returns the names of the modules a text-only training step never reaches in a multimodal wrapper
    (vision or audio towers and their projectors): the siblings of the path to the language model that
    hold parameters, the output embedding excepted. ``[]`` for a text-only model."""
    prefix = _language_model_prefix(model)
    if not prefix:
        return []
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    parts = prefix[:-1].split(".")
    out = []
    for i, part in enumerate(parts):
        parent_name = ".".join(parts[:i])
        parent = model.get_submodule(parent_name) if parent_name else model
        for child_name, child in parent.named_children():
            if child_name == part or child is head or next(child.parameters(), None) is None:
                continue
            out.append(f"{parent_name}.{child_name}" if parent_name else child_name)
    return out


def _linear_layers(model) -> dict[str, Any]:
    import torch
    from transformers.pytorch_utils import Conv1D

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    skip_prefixes: list[str] = []
    out = {}
    for name, module in model.named_modules():
        if any(name.startswith(p) for p in skip_prefixes):
            continue
        if hasattr(module, "base_layer") and hasattr(module, "active_adapters"):  # a PEFT layer: keep it whole
            skip_prefixes.append(name + ".")
            out[name] = module
            continue
        if isinstance(module, (torch.nn.Linear, Conv1D)) and module is not head:
            out[name] = module
    return out


def _inside_attention(name: str, modules: dict[str, Any]) -> bool:
    parts = name.split(".")
    for i in range(1, len(parts)):
        parent = ".".join(parts[:i])
        word = parts[i - 1].lower()
        if any(w in word for w in _ATTENTION_WORDS) or "attention" in type(modules[parent]).__name__.lower():
            return True
    return False


def _shortest_suffixes(chosen: set[str], others: set[str]) -> set[str]:
    def matches(suffix: str, name: str) -> bool:
        return name == suffix or name.endswith("." + suffix)

    out = set()
    for name in chosen:
        parts = name.split(".")
        for k in range(1, len(parts) + 1):
            suffix = ".".join(parts[-k:])
            if not any(matches(suffix, o) for o in others):
                out.add(suffix)
                break
    return out
