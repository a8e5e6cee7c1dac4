"""The ``kind="vocabulary"`` stage of a ``StagedRecipe``: extend the vocabulary, then train the new rows.

The stage loads the base in full precision, runs ``extend_vocabulary`` on its texts and saves the extended
model and tokenizer to the stage's folder. The stages after it train from that folder (so a QLoRA
recipe loads the *extended* base in 4 bits) with the recipe set up to train the new rows:

- ``rows="new"``: only the new rows train, the original rows stay exactly as they were (EEVE): PEFT's
  ``trainable_token_indices`` for LoRA/QLoRA, ``FullFineTuning(trainable_token_indices=...)`` for full
  fine-tuning (the rest of the model trains);
- ``rows="all"``: every row trains: PEFT ``modules_to_save`` copies of the embedding and head for
  LoRA/QLoRA, the plain recipe for full fine-tuning;
- ``rows="auto"``: "new" for adapter recipes, "all" for full fine-tuning.

Equal cost is equal bytes (``equal_bytes=True``): an extended tokenizer needs fewer tokens for the same
text, so each later ``causal_lm`` stage's ``max_steps`` is scaled by the ratio of the extended to the base
tokenizer's token counts on that stage's documents. Both arms then read about the same number of
training-text bytes, not the same number of tokens (which would give the extended arm more text).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._utils import atomic_write_json
from ..modeling import loading
from ..tokenization import extend_vocabulary, new_token_peft_kwargs

ROWS = ("auto", "new", "all")


def extend(stage, model, tokenizer, recipe, texts: list[str], stage_dir: Path, seed: int):
    """``(extended model folder, extended tokenizer, recipe for the later stages, stage metrics)``."""
    source = loading.resolve_model(model, tokenizer)
    if source.adapter_path is not None or loading.is_peft(source.model):
        raise ValueError(f"vocabulary stage {stage.name!r} got a model with a LoRA adapter; extend the vocabulary "
                         "of the base model, before any adapter (put the vocabulary stage first)")
    base = loading.load_model(source, quantization=None, dtype="float32", adapters=False)
    extended, tok, info = extend_vocabulary(base, source.tokenizer, texts, max_new_tokens=stage.new_tokens,
                                            init=stage.init, seed=seed)
    stage_dir.mkdir(parents=True, exist_ok=True)
    extended.save_pretrained(str(stage_dir))
    tok.save_pretrained(str(stage_dir))
    atomic_write_json(stage_dir / "vocabulary.json", json.loads(json.dumps(info.to_dict(), default=str)))
    rows = stage.rows if stage.rows != "auto" else ("new" if recipe._adapters else "all")
    kwargs: dict[str, Any] = {}
    if info.new_token_ids and rows == "new":
        kwargs = new_token_peft_kwargs(extended, info)
    elif info.new_token_ids and rows == "all" and recipe._adapters:
        kwargs = new_token_peft_kwargs(extended, info, how="modules_to_save")
    metrics = {"stage": stage.name, "kind": stage.kind, "output_dir": str(stage_dir), "added": len(info.added_tokens),
               "init": info.init, "init_seed": info.init_seed, "rows": rows,
               "fertility_before": info.fertility_before, "fertility_after": info.fertility_after,
               "vocab_size": [info.old_vocab_size, info.new_vocab_size], "shortfall": info.shortfall,
               "recipe_changes": {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()}}
    return str(stage_dir), tok, (recipe.copy(**kwargs) if kwargs else recipe), metrics


def token_ratio(old_tokenizer, new_tokenizer, texts: list[str]) -> float:
    """Tokens of ``new_tokenizer`` over tokens of ``old_tokenizer`` on ``texts`` (1.0 for no texts)."""
    def count(tok) -> int:
        return sum(len(ids) for ids in tok(list(texts), add_special_tokens=False)["input_ids"])

    old = count(old_tokenizer)
    return count(new_tokenizer) / old if old else 1.0
