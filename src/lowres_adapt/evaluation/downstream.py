"""Downstream evaluation: multiple-choice tasks scored by log-likelihood (zero- and few-shot).

A task is a list of items ``{"context", "choices", "label"}`` (sentiment, XCOPA- or Belebele-style sets
in JSONL). Each choice is scored as the summed log-likelihood of ``delimiter + choice`` given the
context, as lm-evaluation-harness does for ``multiple_choice`` tasks::

    [BOS] few-shot examples + context | " " + choice
    ------------ conditioning ------- | -- scored --

* ``acc``: the choice with the highest summed log-likelihood is the prediction.
* ``acc_norm``: the same, divided by the choice's length in UTF-8 bytes (lm-eval's ``acc_bytes``), so
  long choices are not penalised for having more tokens; comparable across tokenizers.

The context and the continuation are tokenized together and split where the context's own tokens end
(lm-eval's ``_encode_pair``; trailing spaces of the context move into the continuation). A BOS (else EOS)
token comes first, as in :class:`~lowres_adapt.PerplexityEvaluator`. Contexts longer than the model's
window are cut on the left. Few-shot examples are drawn per item with a generator seeded by
``(seed, item index)``, never include the query item, and are written as
``context + delimiter + correct choice`` joined by ``fewshot_delimiter``. Accuracies carry a
percentile-bootstrap confidence interval over items (``scipy.stats.bootstrap``).

Example::

    >>> import lowres_adapt as la
    >>> task = la.MultipleChoiceTask([
    ...     {"context": "Ҡояш", "choices": ["ҡалҡа.", "батмай."], "label": 0},
    ...     {"context": "Һыу", "choices": ["аға.", "осмай."], "label": 0},
    ... ])
    >>> tok = la.train_tokenizer(["Ҡояш ҡалҡа. Һыу аға."] * 20, vocab_size=280)
    >>> model = la.build_tiny_model("gpt2", tok, hidden_size=32, max_positions=64)
    >>> res = la.evaluate_multiple_choice(model, tok, task, bootstrap_samples=0)
    >>> res.n_items, 0.0 <= res.acc <= 1.0
    (2, True)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._common import few_units_warning, model_context, percentile_bootstrap, prefix_token_id, token_nll

__all__ = ["MultipleChoiceItem", "MultipleChoiceResult", "MultipleChoiceTask", "evaluate_multiple_choice"]


@dataclass(frozen=True)
class MultipleChoiceItem:
    """One question: a context, two or more choices and the index of the correct one."""

    context: str = field(metadata={"help": "Text the choices continue (may be empty)."})
    choices: tuple[str, ...] = field(metadata={"help": "Candidate continuations, at least two."})
    label: int = field(metadata={"help": "Index of the correct choice."})

    def __post_init__(self) -> None:
        if not isinstance(self.context, str):
            raise ValueError(f"context must be a string, got {type(self.context).__name__}")
        if isinstance(self.choices, str) or not isinstance(self.choices, Sequence):
            raise ValueError(f"choices must be a list of strings, got {self.choices!r}")
        object.__setattr__(self, "choices", tuple(self.choices))
        if len(self.choices) < 2 or not all(isinstance(c, str) and c for c in self.choices):
            raise ValueError(f"choices must hold at least two non-empty strings, got {list(self.choices)!r}")
        if isinstance(self.label, bool) or not isinstance(self.label, int) or not 0 <= self.label < len(
                self.choices):
            raise ValueError(f"label must be an index into choices (0..{len(self.choices) - 1}), "
                             f"got {self.label!r}")


class MultipleChoiceTask:
    """A named list of :class:`MultipleChoiceItem` and how its prompts are written.

    ``delimiter`` goes between a context and a choice (lm-eval's ``target_delimiter``);
    ``fewshot_delimiter`` between few-shot examples. ``items`` may be items or dicts with the keys
    ``context``, ``choices``, ``label``.

    Example::

        >>> import lowres_adapt as la
        >>> task = la.MultipleChoiceTask([{"context": "2+2 =", "choices": ["4", "5"], "label": 0}] * 3)
        >>> task.prompt(0, shots=[1])
        '2+2 = 4\\n\\n2+2 ='
    """

    def __init__(self, items: Iterable[MultipleChoiceItem | Mapping[str, Any]], name: str = "task", *,
                 delimiter: str = " ", fewshot_delimiter: str = "\n\n") -> None:
        self.items = [it if isinstance(it, MultipleChoiceItem) else _item_from_mapping(it, f"item {i}")
                      for i, it in enumerate(items)]
        if not self.items:
            raise ValueError("a MultipleChoiceTask needs at least one item")
        self.name = name
        self.delimiter = delimiter
        self.fewshot_delimiter = fewshot_delimiter

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike, name: str | None = None, *, context_field: str = "context",
                   choices_field: str = "choices", label_field: str = "label", **kwargs) -> MultipleChoiceTask:
        """A task read from a JSONL file, one ``{"context", "choices", "label"}`` object per line.

        Other field names (e.g. Belebele's) are mapped with ``context_field``/``choices_field``/
        ``label_field``; blank lines are skipped; ``name`` defaults to the file's stem.

        Example::

            >>> import json, tempfile, lowres_adapt as la
            >>> p = tempfile.mktemp(suffix=".jsonl")
            >>> _ = open(p, "w").write(json.dumps({"context": "a", "choices": ["b", "c"], "label": 1}))
            >>> la.MultipleChoiceTask.from_jsonl(p).items[0].label
            1
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"task file {str(path)!r} does not exist; pass a JSONL file with "
                                    '{"context", "choices", "label"} lines')
        from ..data import iter_jsonl_records

        items = []
        for lineno, record in iter_jsonl_records(path):
            where = f"{path}:{lineno}"
            missing = [f for f in (context_field, choices_field, label_field) if f not in record]
            if missing:
                raise ValueError(f"{where}: missing field(s) {missing}; the line has {sorted(record)} "
                                 "(map other names with context_field=/choices_field=/label_field=)")
            items.append(_item_from_mapping({"context": record[context_field],
                                             "choices": record[choices_field],
                                             "label": record[label_field]}, where))
        return cls(items, name or path.stem, **kwargs)

    def to_records(self) -> list[dict[str, Any]]:
        """The items as JSON-ready dicts (what :meth:`from_jsonl` reads, one per line)."""
        return [{"context": it.context, "choices": list(it.choices), "label": it.label} for it in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> MultipleChoiceItem:
        return self.items[index]

    def __iter__(self):
        return iter(self.items)

    def __repr__(self) -> str:
        return f"MultipleChoiceTask(name={self.name!r}, items={len(self.items)}, delimiter={self.delimiter!r})"

    def prompt(self, index: int, shots: Sequence[int] = (), pool: MultipleChoiceTask | None = None) -> str:
        """The conditioning text of item ``index``: the few-shot examples ``shots`` (indices into
        ``pool``, default this task), each with its correct choice, then the item's context."""
        pool = self if pool is None else pool
        parts = [pool.items[s].context + self.delimiter + pool.items[s].choices[pool.items[s].label]
                 for s in shots]
        return self.fewshot_delimiter.join([*parts, self.items[index].context])

    def fewshot_indices(self, index: int, k: int, seed: int = 0,
                        pool: MultipleChoiceTask | None = None) -> list[int]:
        """``k`` example indices for item ``index``, drawn from ``pool`` (default: this task) with a
        generator seeded by ``(seed, index)``; the query item (or an identical item) is never drawn."""
        import numpy as np

        if k == 0:
            return []
        query = self.items[index]
        if pool is None:
            candidates = [i for i in range(len(self.items)) if i != index]
            pool_items = self.items
        else:
            pool_items = pool.items
            candidates = list(range(len(pool_items)))
        candidates = [i for i in candidates
                      if (pool_items[i].context, pool_items[i].choices) != (query.context, query.choices)]
        if len(candidates) < k:
            raise ValueError(f"num_fewshot={k} but only {len(candidates)} other items can serve as examples "
                             f"for item {index}; lower num_fewshot or pass a larger fewshot_pool")
        rng = np.random.default_rng([seed, index])
        return [candidates[int(i)] for i in rng.choice(len(candidates), size=k, replace=False)]


@dataclass
class MultipleChoiceResult:
    """Accuracy of one model on one multiple-choice task, with bootstrap intervals and per-item scores."""

    task: str = field(metadata={"help": "Task name."})
    n_items: int = field(metadata={"help": "Items scored."})
    num_fewshot: int = field(metadata={"help": "Examples in each prompt."})
    acc: float = field(metadata={"help": "Share of items whose highest-log-likelihood choice is correct. "
                                         "Higher is better; mean over items."})
    acc_norm: float = field(metadata={"help": "Same with log-likelihood per UTF-8 byte of the choice."})
    confidence_intervals: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "{'acc': [lo, hi], 'acc_norm': [lo, hi], 'level', 'method'}."})
    per_item: list[dict[str, Any]] = field(
        default_factory=list, metadata={"help": "index, label, loglik, n_bytes, pred, pred_norm, fewshot."})
    settings: dict[str, Any] = field(default_factory=dict, metadata={"help": "seed, delimiters, lengths."})
    warnings: list[str] = field(
        default_factory=list, metadata={"help": "What to be careful about, e.g. intervals over fewer than 10 items."})

    higher_is_better = {"acc": True, "acc_norm": True}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)

    def __str__(self) -> str:
        ci = self.confidence_intervals
        def fmt(k):
            return f"{getattr(self, k):.3f}" + (f" [{ci[k][0]:.3f}, {ci[k][1]:.3f}]" if k in ci else "")
        return (f"{self.task} ({self.n_items} items, {self.num_fewshot}-shot): acc {fmt('acc')}, "
                f"acc_norm {fmt('acc_norm')}")


def evaluate_multiple_choice(
    model,
    tokenizer,
    task: MultipleChoiceTask | str | os.PathLike,
    *,
    num_fewshot: int = 0,
    seed: int = 0,
    fewshot_pool: MultipleChoiceTask | None = None,
    batch_size: int = 8,
    bootstrap_samples: int = 1000,
    confidence_level: float = 0.95,
    max_length: int | None = None,
    max_batch_tokens: int = 16384,
) -> MultipleChoiceResult:
    """A :class:`MultipleChoiceResult`: ``acc`` and ``acc_norm`` of ``model`` on ``task`` with CIs.

    ``task`` may be a JSONL path. ``num_fewshot`` examples are drawn per item (seeded) from
    ``fewshot_pool`` (e.g. a train split; default: the task's other items). ``max_length`` defaults to
    the model's context; longer prompts are cut on the left. ``bootstrap_samples=0`` skips the intervals.

    Example::

        >>> import lowres_adapt as la
        >>> task = la.MultipleChoiceTask([{"context": q, "choices": ["b", "c"], "label": 0} for q in "adef"])
        >>> tok = la.train_tokenizer(["a b", "d c"] * 20, vocab_size=260)
        >>> m = la.build_tiny_model("gpt2", tok, hidden_size=16, max_positions=32)
        >>> r = la.evaluate_multiple_choice(m, tok, task, num_fewshot=2, bootstrap_samples=0)
        >>> r.per_item[0]["fewshot"] != [0], len(r.per_item[0]["loglik"])
        (True, 2)
    """
    import numpy as np
    import torch

    if isinstance(task, (str, os.PathLike)):
        task = MultipleChoiceTask.from_jsonl(task)
    if not isinstance(task, MultipleChoiceTask):
        raise ValueError(f"task must be a MultipleChoiceTask or a JSONL path, got {type(task).__name__}")
    for name, value, low in (("num_fewshot", num_fewshot, 0), ("batch_size", batch_size, 1),
                             ("max_batch_tokens", max_batch_tokens, 1),
                             ("bootstrap_samples", bootstrap_samples, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not 0 < confidence_level < 1:
        raise ValueError(f"confidence_level must be between 0 and 1, got {confidence_level!r}")
    if tokenizer is None:
        raise ValueError("evaluate_multiple_choice needs the model's tokenizer")
    prefix = prefix_token_id(tokenizer)
    if max_length is None:
        max_length = model_context(model)
    if max_length is not None and max_length < 2:
        raise ValueError(f"max_length must be >= 2, got {max_length}")

    # One request per (item, choice): token ids fed to the model and the continuation ids scored.
    shots = [task.fewshot_indices(i, num_fewshot, seed, fewshot_pool) for i in range(len(task))]
    requests: list[tuple[int, int, list[int], list[int]]] = []
    for i, item in enumerate(task.items):
        context = task.prompt(i, shots[i], fewshot_pool)
        for j, choice in enumerate(item.choices):
            ctx_ids, cont_ids = _encode_pair(tokenizer, context, task.delimiter + choice)
            if max_length is not None and len(cont_ids) > max_length:
                raise ValueError(f"item {i} choice {j} is {len(cont_ids)} tokens, longer than the model's "
                                 f"window ({max_length}); shorten the choice or raise max_length")
            inputs = ([prefix] + ctx_ids + cont_ids)[:-1]
            if max_length is not None and len(inputs) > max_length:
                inputs = inputs[-max_length:]  # cut the context on the left; the continuation stays whole
            requests.append((i, j, inputs, cont_ids))

    loglik = [[0.0] * len(item.choices) for item in task.items]
    order = sorted(range(len(requests)), key=lambda r: -len(requests[r][2]))  # longest first (as lm-eval)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            start = 0
            while start < len(order):  # at most batch_size requests and max_batch_tokens tokens a pass
                width = len(requests[order[start]][2])
                take = min(batch_size, max(1, max_batch_tokens // width))
                batch = [requests[r] for r in order[start:start + take]]
                start += len(batch)
                input_ids = torch.zeros((len(batch), width), dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, (_, _, inputs, _) in enumerate(batch):
                    input_ids[row, :len(inputs)] = torch.tensor(inputs)  # right padding: positions unchanged
                    mask[row, :len(inputs)] = 1
                targets = torch.full((len(batch), width), -100, dtype=torch.long)
                for row, (_, _, inputs, cont) in enumerate(batch):
                    targets[row, len(inputs) - len(cont):len(inputs)] = torch.tensor(cont)
                # the output layer on the continuation's positions only, vocabulary-bounded chunks
                nll = token_nll(model, input_ids, mask, targets).sum(dim=1)
                for row, (i, j, _, _) in enumerate(batch):
                    loglik[i][j] = -float(nll[row])
    finally:
        model.train(was_training)

    per_item = []
    correct, correct_norm = [], []
    for i, item in enumerate(task.items):
        n_bytes = [len(c.encode("utf-8")) for c in item.choices]
        pred = int(np.argmax(loglik[i]))
        pred_norm = int(np.argmax([ll / nb for ll, nb in zip(loglik[i], n_bytes, strict=True)]))
        correct.append(float(pred == item.label))
        correct_norm.append(float(pred_norm == item.label))
        per_item.append({"index": i, "label": item.label, "loglik": loglik[i], "n_bytes": n_bytes,
                         "pred": pred, "pred_norm": pred_norm, "fewshot": shots[i]})
    cis = _bootstrap({"acc": correct, "acc_norm": correct_norm}, bootstrap_samples, confidence_level, seed)
    caution = few_units_warning(len(task), "items") if cis else None
    if caution:
        warnings.warn(caution, UserWarning, stacklevel=2)
    return MultipleChoiceResult(
        task=task.name, n_items=len(task), num_fewshot=num_fewshot,
        acc=float(np.mean(correct)), acc_norm=float(np.mean(correct_norm)),
        confidence_intervals=cis, per_item=per_item,
        settings={"seed": seed, "delimiter": task.delimiter, "fewshot_delimiter": task.fewshot_delimiter,
                  "max_length": max_length, "prefix_token_id": prefix, "bootstrap_samples": bootstrap_samples,
                  "fewshot_pool": None if fewshot_pool is None else fewshot_pool.name},
        warnings=[caution] if caution else [],
    )


# --- helpers -----------------------------------------------------------------------------------------


def _item_from_mapping(record: Mapping[str, Any], where: str) -> MultipleChoiceItem:
    try:
        return MultipleChoiceItem(context=record["context"], choices=record["choices"], label=record["label"])
    except KeyError as err:
        raise ValueError(f"{where}: missing key {err.args[0]!r}; items need 'context', 'choices', 'label'") from None
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Context ids and continuation ids, split where the context's own encoding ends (lm-eval)."""
    stripped = context.rstrip()
    if len(stripped) != len(context):  # "Q: x " + "y" -> "Q: x" + " y": the space belongs to the answer
        continuation = context[len(stripped):] + continuation
        context = stripped
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"] if context else []
    return whole[:len(ctx)], whole[len(ctx):]


def _bootstrap(series: dict[str, list[float]], samples: int, level: float, seed: int) -> dict[str, Any]:
    """Percentile bootstrap over items for each accuracy; {} without samples or with one item."""
    import numpy as np

    n = len(next(iter(series.values())))
    if samples == 0 or n < 2:
        return {}
    out: dict[str, Any] = {"level": level, "method": f"percentile bootstrap over items, {samples} resamples"}
    for name, values in series.items():
        data = np.asarray(values)
        if np.all(data == data[0]):  # every resample has the same mean
            out[name] = [float(data[0]), float(data[0])]
            continue
        low, high = percentile_bootstrap((data,), np.mean, samples=samples, level=level, seed=seed)
        out[name] = [float(low), float(high)]
    return out
