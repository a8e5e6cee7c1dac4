"""Perplexity that compares across tokenizers: bits per byte, word and character perplexity, with CIs.

Per-token perplexity does not compare between models with different tokenizers: a tokenizer that cuts
Bashkir into more pieces gets a lower per-token perplexity for the same text. The evaluator therefore
sums the negative log-likelihood (nats) of every token of every document, scored exactly once, and
divides it by units every tokenizer agrees on: UTF-8 bytes, characters and whitespace-separated words.
Sums are pooled over the corpus (never an average of per-document perplexities), as in
lm-evaluation-harness and nanochat; confidence intervals come from a seeded bootstrap over documents.

Example::

    >>> import lowres_adapt as la
    >>> tok = la.train_tokenizer(["һаумыһығыҙ, дуҫтар!"] * 20, vocab_size=280)
    >>> model = la.build_tiny_model("gpt2", tok, hidden_size=32, max_positions=64)
    >>> res = la.PerplexityEvaluator(bootstrap_samples=100, progress=False).evaluate(
    ...     model, tok, ["һаумыһығыҙ, дуҫтар!", "дуҫтар"])
    >>> res.n_documents, res.n_bytes
    (2, 47)

The window contract for documents longer than ``max_length`` is drawn in ``lowres_adapt.evaluation._windows``
and in ``docs/evaluation.md``.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from itertools import islice
from typing import Any

from ._common import few_units_warning, model_context, percentile_bootstrap, prefix_token_id
from ._windows import eval_mode, score_documents

LN2 = math.log(2.0)

# Documents tokenized and windowed at a time: bounds memory on large corpora. Windows are sorted by
# length within a chunk, and results do not depend on how batches are formed (batch-size invariance).
_DOCS_PER_CHUNK = 2048


@dataclass(frozen=True)
class Metric:
    """How one metric is computed and read: pooled ``Σnll / Σunit``, then a transform (lm-eval style)."""

    name: str
    unit: str  # "tokens" | "bytes" | "words" | "chars": the denominator
    transform: str  # "exp": a perplexity; "bits": nats converted to bits
    higher_is_better: bool = False
    aggregation: str = ""

    def from_ratio(self, nats_per_unit: float) -> float:
        """The metric's value for a pooled ``Σnll / Σunit`` (nats per unit)."""
        if self.transform == "exp":
            return math.exp(nats_per_unit) if nats_per_unit < 700 else math.inf
        return nats_per_unit / LN2


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("token_perplexity", "tokens", "exp", aggregation="exp(Σnll / Σtokens)"),
        Metric("bits_per_byte", "bytes", "bits", aggregation="Σnll / (Σutf8_bytes · ln 2)"),
        Metric("byte_perplexity", "bytes", "exp", aggregation="exp(Σnll / Σutf8_bytes) = 2**bits_per_byte"),
        Metric("word_perplexity", "words", "exp", aggregation="exp(Σnll / Σwords), words = str.split()"),
        Metric("char_perplexity", "chars", "exp", aggregation="exp(Σnll / Σcharacters)"),
        Metric("bits_per_char", "chars", "bits", aggregation="Σnll / (Σcharacters · ln 2)"),
    )
}
_UNITS = ("tokens", "bytes", "words", "chars")


@dataclass
class PerplexityResult:
    """Pooled perplexities of one model on one corpus, with bootstrap CIs and per-document sums.

    ``to_dict()`` gives every field as plain JSON-ready values; ``from_dict`` reads it back.

    >>> r = PerplexityResult.from_dict({"total_nll": 2 * 0.6931471805599453, "n_tokens": 2, "n_bytes": 2,
    ...     "n_words": 1, "n_chars": 2, "n_documents": 1})
    >>> round(r.bits_per_byte, 6), round(r.token_perplexity, 6)
    (1.0, 2.0)
    """

    total_nll: float = field(metadata={"help": "Σ negative log-likelihood over all scored tokens, in nats."})
    n_tokens: int = field(metadata={"help": "Tokens scored (the prefix token is never scored)."})
    n_bytes: int = field(metadata={"help": "UTF-8 bytes of the texts scored."})
    n_words: int = field(metadata={"help": "Whitespace-separated words (len(text.split()))."})
    n_chars: int = field(metadata={"help": "Unicode code points (len(text))."})
    n_documents: int = field(metadata={"help": "Documents scored, empty ones included."})
    confidence_intervals: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "{metric: [low, high]} plus 'level' and 'method'; empty without bootstrap."},
    )
    per_document: list[dict[str, Any]] = field(
        default_factory=list,
        metadata={"help": "One record per document: id, tokens, bytes, words, chars, nll, sha256."},
    )
    settings: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Evaluator settings that produced the numbers (max_length, stride, seed, ...)."},
    )
    model: str | None = field(default=None, metadata={"help": "Model name or path, when known."})
    tokenizer: str | None = field(default=None, metadata={"help": "Tokenizer name or path, when known."})
    documents_fingerprint: str = field(default="", metadata={"help": "Hash of the texts, in order."})
    versions: dict[str, str] = field(default_factory=dict, metadata={"help": "Library versions."})
    warnings: list[str] = field(
        default_factory=list,
        metadata={"help": "What to be careful about, e.g. intervals over fewer than 10 documents."},
    )

    def _ratio(self, unit: str) -> float:
        denominator = getattr(self, f"n_{unit}")
        return self.total_nll / denominator if denominator else math.nan

    def metric(self, name: str) -> float:
        """The value of metric ``name`` (a key of ``METRICS``)."""
        if name not in METRICS:
            from .._utils import did_you_mean

            raise ValueError(f"unknown metric {name!r}{did_you_mean(name, METRICS)}; known: {sorted(METRICS)}")
        ratio = self._ratio(METRICS[name].unit)
        return math.nan if math.isnan(ratio) else METRICS[name].from_ratio(ratio)

    token_perplexity = property(lambda self: self.metric("token_perplexity"), doc="exp(Σnll / Σtokens).")
    bits_per_byte = property(lambda self: self.metric("bits_per_byte"), doc="Σnll / (Σbytes · ln 2).")
    byte_perplexity = property(lambda self: self.metric("byte_perplexity"), doc="exp(Σnll / Σbytes).")
    word_perplexity = property(lambda self: self.metric("word_perplexity"), doc="exp(Σnll / Σwords).")
    char_perplexity = property(lambda self: self.metric("char_perplexity"), doc="exp(Σnll / Σchars).")
    bits_per_char = property(lambda self: self.metric("bits_per_char"), doc="Σnll / (Σchars · ln 2).")

    def to_dict(self) -> dict[str, Any]:
        """All metrics, counts, CIs, settings and per-document records as a JSON-ready dict."""
        out: dict[str, Any] = {name: _finite_or_none(self.metric(name)) for name in METRICS}
        out.update(asdict(self))
        out.update({k: self.settings.get(k) for k in ("max_length", "stride", "seed", "bootstrap_samples")})
        out["higher_is_better"] = {name: m.higher_is_better for name, m in METRICS.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PerplexityResult:
        """Read back what ``to_dict`` wrote (derived metrics are recomputed from the sums)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_markdown(self) -> str:
        """A Markdown table of every metric with its confidence interval.

        >>> print(PerplexityResult(0.0, 1, 1, 1, 1, 1).to_markdown().splitlines()[0])
        | metric | value | CI | better |
        """
        level = self.confidence_intervals.get("level")
        lines = ["| metric | value | CI | better |", "| --- | --- | --- | --- |"]
        for name, m in METRICS.items():
            ci = self.confidence_intervals.get(name)
            ci_text = f"[{_fmt(ci[0])}, {_fmt(ci[1])}] ({level:.0%})" if ci else "n/a"
            lines.append(f"| {name} | {_fmt(self.metric(name))} | {ci_text} | "
                         f"{'higher' if m.higher_is_better else 'lower'} |")
        lines.append(f"| documents / tokens / bytes / words / chars | {self.n_documents} / {self.n_tokens} / "
                     f"{self.n_bytes} / {self.n_words} / {self.n_chars} | | |")
        lines += [f"\nwarning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def __str__(self) -> str:
        return (f"PerplexityResult(bits_per_byte={self.bits_per_byte:.4f}, token_perplexity="
                f"{self.token_perplexity:.3f}, word_perplexity={self.word_perplexity:.3f}, "
                f"n_documents={self.n_documents}, n_tokens={self.n_tokens})")


@dataclass
class PerplexityEvaluator:
    """Scores texts with a causal LM; ``evaluate`` returns a :class:`PerplexityResult`.

    Every token is scored exactly once, the first one conditioned on a prefix token (BOS, else EOS).
    Documents longer than ``max_length`` are scored in rolling windows that reproduce
    lm-evaluation-harness's ``loglikelihood_rolling`` exactly when ``stride`` is ``None``.

    >>> PerplexityEvaluator(max_length=128, stride=64)
    PerplexityEvaluator(max_length=128, stride=64, batch_size=8, max_batch_tokens=16384, bootstrap_samples=1000, seed=0, confidence_level=0.95, progress=True)
    """

    max_length: int | None = field(
        default=None,
        metadata={"help": "Window length in tokens, the prefix token included. None: the model's context "
                          "length (max_position_embeddings / n_positions of config.get_text_config(), as "
                          "lm-eval reads it)."},
    )
    stride: int | None = field(
        default=None,
        metadata={"help": "New tokens predicted per window after the first. None: max_length (disjoint "
                          "windows, lm-eval's rolling log-likelihood). Smaller: more context, more compute."},
    )
    batch_size: int = field(default=8, metadata={"help": "Windows per forward pass (at most)."})
    max_batch_tokens: int = field(
        default=16384,
        metadata={"help": "Tokens per forward pass (windows x width, padding included; one window at least): "
                          "with long contexts (32k for Mistral-7B) a batch is one window, not eight."},
    )
    bootstrap_samples: int = field(
        default=1000, metadata={"help": "Bootstrap resamples of documents for the CIs; 0 disables them."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the bootstrap (results are deterministic)."})
    confidence_level: float = field(default=0.95, metadata={"help": "Level of the confidence intervals."})
    progress: bool = field(default=True, metadata={"help": "Show a tqdm progress bar over tokens."})

    def __post_init__(self) -> None:
        for name in ("max_length", "stride"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        if self.max_length is not None and self.stride is not None and self.stride > self.max_length:
            raise ValueError(f"stride={self.stride} is larger than max_length={self.max_length}; tokens would "
                             f"be skipped. Use stride <= max_length, or None for disjoint windows.")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not _is_int(self.max_batch_tokens) or self.max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be a positive integer, got {self.max_batch_tokens!r}")
        if not _is_int(self.bootstrap_samples) or self.bootstrap_samples < 0:
            raise ValueError(f"bootstrap_samples must be an integer >= 0 (0 disables CIs), "
                             f"got {self.bootstrap_samples!r}")
        if not _is_int(self.seed):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not (isinstance(self.confidence_level, float) and 0.0 < self.confidence_level < 1.0):
            raise ValueError(f"confidence_level must be a float in (0, 1), e.g. 0.95, got {self.confidence_level!r}")

    def evaluate(
        self,
        model: Any,
        tokenizer: Any = None,
        texts: Iterable[str] | None = None,
        *,
        ids: Sequence[Any] | None = None,
        load: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
    ) -> PerplexityResult:
        """A :class:`PerplexityResult` for ``texts`` under ``model``.

        ``model``: a ``transformers`` causal LM (plain, PEFT-wrapped or 4-bit), or a path / hub id /
        ``sample:`` name to load (a PEFT adapter folder loads with its base model). ``tokenizer``: a
        tokenizer, a path, or ``None`` to load it from ``model``'s path. ``texts``: any iterable of strings,
        streamed in chunks. ``ids``: optional document ids for ``per_document`` (default: the index).
        A path loads through the library's one loader (``lowres_adapt.modeling.load_for_inference``): on
        the GPU when there is one, in ``load`` (``"fp32"``, ``"bf16"``, ``"fp16"``, ``"nf4"``; default bf16/fp16
        on a GPU, fp32 on CPU), with ``model_kwargs`` (``revision``, ``attn_implementation``, ...) passed on.

        >>> import lowres_adapt as la
        >>> tok = la.train_tokenizer(["ҡыҙ бала, малай"] * 20, vocab_size=270)
        >>> model = la.build_tiny_model("llama", tok, hidden_size=32)
        >>> ev = la.PerplexityEvaluator(bootstrap_samples=0, progress=False)
        >>> res = ev.evaluate(model, tok, ["ҡыҙ бала"], ids=["d1"])
        >>> res.per_document[0]["id"], res.n_words, res.confidence_intervals
        ('d1', 2, {})
        """
        if texts is None:
            if isinstance(tokenizer, (list, tuple)):
                raise ValueError("evaluate(model, tokenizer, texts): the second argument looks like the texts. "
                                 "Pass evaluate(model, None, texts) or evaluate(model, texts=texts).")
            raise ValueError("evaluate needs texts: evaluate(model, tokenizer, texts)")
        if isinstance(texts, str):
            raise ValueError("texts must be an iterable of documents, got one str; wrap it: [text]")
        model, tokenizer = _resolve_model(model, tokenizer, load, model_kwargs)
        prefix_id = prefix_token_id(tokenizer)
        max_length = self._max_length(model, tokenizer)
        stride = self.stride
        if stride is not None and stride > max_length:
            raise ValueError(f"stride={stride} is larger than max_length={max_length} (the model's context); "
                             f"use stride <= {max_length} or None")
        id_list = None if ids is None else list(ids)
        total = len(texts) if hasattr(texts, "__len__") else None  # type: ignore[arg-type]
        if id_list is not None and total is not None and len(id_list) != total:
            raise ValueError(f"ids has {len(id_list)} entries but texts has {total}; give one id per text")

        records: list[dict[str, Any]] = []
        doc_hashes = hashlib.sha256()
        with eval_mode(model), _progress(self.progress) as bar:
            for chunk in _chunks(iter(texts), _DOCS_PER_CHUNK):
                for i, text in enumerate(chunk):
                    if not isinstance(text, str):
                        raise ValueError(f"texts must be strings; document {len(records) + i} is "
                                         f"{type(text).__name__}")
                token_lists = tokenizer(chunk, add_special_tokens=False, verbose=False)["input_ids"]
                bar.total = (bar.total or 0) + sum(map(len, token_lists))
                bar.refresh()
                nll = score_documents(model, token_lists, prefix_id, max_length, stride, self.batch_size, bar,
                                      max_batch_tokens=self.max_batch_tokens)
                for text, tokens, doc_nll in zip(chunk, token_lists, nll, strict=True):
                    index = len(records)
                    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
                    doc_hashes.update(digest.encode())
                    records.append({
                        "id": index if id_list is None else _id_at(id_list, index),
                        "tokens": len(tokens), "bytes": len(text.encode("utf-8")),
                        "words": len(text.split()), "chars": len(text), "nll": doc_nll,
                        "sha256": digest[:16],
                    })
        if id_list is not None and len(id_list) != len(records):
            raise ValueError(f"ids has {len(id_list)} entries but texts had {len(records)}; give one id per text")
        if not records:
            raise ValueError("texts is empty: nothing to evaluate")
        if sum(r["tokens"] for r in records) == 0:
            raise ValueError("every text is empty (no tokens): nothing to evaluate")

        from .._utils import library_versions

        settings = {
            "max_length": max_length, "stride": stride, "batch_size": self.batch_size,
            "max_batch_tokens": self.max_batch_tokens, "bootstrap_samples": self.bootstrap_samples, "seed": self.seed,
            "confidence_level": self.confidence_level, "prefix_token_id": prefix_id,
            "window_contract": "lm-eval loglikelihood_rolling" if stride is None else f"strided ({stride})",
        }
        result = PerplexityResult(
            total_nll=math.fsum(r["nll"] for r in records),
            n_tokens=sum(r["tokens"] for r in records), n_bytes=sum(r["bytes"] for r in records),
            n_words=sum(r["words"] for r in records), n_chars=sum(r["chars"] for r in records),
            n_documents=len(records), per_document=records, settings=settings,
            model=_name_of(model), tokenizer=_name_of(tokenizer),
            documents_fingerprint=doc_hashes.hexdigest()[:16], versions=library_versions(),
        )
        result.confidence_intervals = _bootstrap_cis(records, self.bootstrap_samples, self.confidence_level,
                                                     self.seed)
        caution = few_units_warning(len(records), "documents") if result.confidence_intervals else None
        if caution:
            result.warnings.append(caution)
            warnings.warn(caution, UserWarning, stacklevel=2)
        return result

    def _max_length(self, model: Any, tokenizer: Any) -> int:
        context = model_context(model)
        if self.max_length is None:
            if context is not None:
                return context
            tok_max = getattr(tokenizer, "model_max_length", None)
            if _is_int(tok_max) and 1 <= tok_max < 1_000_000:
                return tok_max
            raise ValueError("cannot tell the model's context length from its config or tokenizer; "
                             "pass PerplexityEvaluator(max_length=...)")
        if context is not None and self.max_length > context:
            raise ValueError(f"max_length={self.max_length} exceeds the model's context of {context} tokens; "
                             f"use max_length <= {context} (or None for the model's context)")
        return self.max_length


def compare_results(
    a: PerplexityResult,
    b: PerplexityResult,
    *,
    bootstrap_samples: int | None = None,
    confidence_level: float | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """A paired comparison of two results on the same documents, in bits per byte (lower is better).

    Returns a dict: ``a``, ``b`` (pooled bits per byte), ``difference`` (``a - b``; negative means A is
    better), ``confidence_interval`` of the difference (paired bootstrap over documents),
    ``p_value`` (two-sided Wilcoxon signed-rank test on per-document bits per byte), ``better``
    (``"a"``, ``"b"``, or ``None`` when the interval contains 0) and the settings used. Raises
    ``ValueError`` when the two results are not on the same documents in the same order.

    >>> recs = [{"id": i, "bytes": 10, "nll": 1.0 + i} for i in range(5)]
    >>> a = PerplexityResult(15.0, 50, 50, 10, 50, 5, per_document=recs)
    >>> b = PerplexityResult(20.0, 50, 50, 10, 50, 5,
    ...                      per_document=[dict(r, nll=r["nll"] + 1) for r in recs])
    >>> c = compare_results(a, b, bootstrap_samples=200)
    >>> round(c["difference"], 4), c["better"]
    (-0.1443, 'a')
    """
    import numpy as np
    from scipy import stats

    _check_same_documents(a, b)
    samples = a.settings.get("bootstrap_samples", 1000) if bootstrap_samples is None else bootstrap_samples
    level = a.settings.get("confidence_level", 0.95) if confidence_level is None else confidence_level
    seed = a.settings.get("seed", 0) if seed is None else seed
    nll_a = np.array([r["nll"] for r in a.per_document], dtype=np.float64)
    nll_b = np.array([r["nll"] for r in b.per_document], dtype=np.float64)
    n_bytes = np.array([r["bytes"] for r in a.per_document], dtype=np.float64)
    difference = a.bits_per_byte - b.bits_per_byte

    ci = None
    if samples and len(nll_a) >= 2:
        def statistic(x, y, w, axis=-1):
            return (x.sum(axis) - y.sum(axis)) / (w.sum(axis) * LN2)

        low, high = percentile_bootstrap((nll_a, nll_b, n_bytes), statistic, samples=samples, level=level,
                                         seed=seed, paired=True, vectorized=True)
        ci = [float(low), float(high)]

    keep = n_bytes > 0
    per_doc = (nll_a[keep] - nll_b[keep]) / (n_bytes[keep] * LN2)
    nonzero = per_doc[per_doc != 0]
    if len(nonzero) == 0:
        p_value = 1.0  # identical per-document scores: no evidence of a difference
    elif len(nonzero) < 2:
        p_value = None
    else:
        p_value = float(stats.wilcoxon(per_doc, zero_method="wilcox", alternative="two-sided").pvalue)
    better = None
    if ci is not None and ci[1] < 0:
        better = "a"
    elif ci is not None and ci[0] > 0:
        better = "b"
    return {
        "metric": "bits_per_byte", "higher_is_better": False,
        "a": a.bits_per_byte, "b": b.bits_per_byte, "difference": difference,
        "confidence_interval": ci, "confidence_level": level, "bootstrap_samples": samples, "seed": seed,
        "p_value": p_value, "test": "two-sided Wilcoxon signed-rank on per-document bits per byte",
        "a_better_share": float(np.mean(per_doc < 0)) if len(per_doc) else None,
        "n_documents": int(len(nll_a)), "better": better,
    }


# ----------------------------------------------------------------------------------------------------
# helpers

def _progress(enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=0, unit="tok", unit_scale=True, desc="perplexity", disable=not enabled, leave=False)


def _chunks(iterator: Iterator[str], size: int) -> Iterator[list[str]]:
    while chunk := list(islice(iterator, size)):
        yield chunk


def _resolve_model(model: Any, tokenizer: Any, load: str | None, model_kwargs: dict | None) -> tuple[Any, Any]:
    """Load ``model`` / ``tokenizer`` when they are paths or hub ids; check the tokenizer is there."""
    from ..modeling import load_for_inference

    if tokenizer is None and not isinstance(model, (str, os.PathLike)):
        raise ValueError("evaluate needs a tokenizer when model is a model object: "
                         "evaluate(model, tokenizer, texts)")
    if tokenizer is not None and not isinstance(tokenizer, (str, os.PathLike)) and not callable(tokenizer):
        raise ValueError(f"tokenizer must be a transformers tokenizer or a path, got {type(tokenizer).__name__}")
    return load_for_inference(model, tokenizer, load=load, model_kwargs=model_kwargs)


def _name_of(obj: Any) -> str | None:
    name = getattr(obj, "name_or_path", None) or getattr(getattr(obj, "config", None), "_name_or_path", None)
    return str(name) if name else None


def _id_at(ids: list[Any], index: int) -> Any:
    if index >= len(ids):
        raise ValueError(f"ids has {len(ids)} entries but texts has more; give one id per text")
    value = ids[index]
    return value.item() if hasattr(value, "item") else value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fmt(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.4g}"


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


# ----------------------------------------------------------------------------------------------------
# statistics

def _bootstrap_cis(records, samples: int, level: float, seed: int) -> dict[str, Any]:
    """Percentile bootstrap over documents, one draw of resamples shared by every metric.

    Each resample recomputes the pooled ratio Σnll/Σunit (not a mean of per-document ratios); the
    metrics are monotone in that ratio, so their percentile intervals are the transformed ratio's.
    """
    if not samples:
        return {}
    if len(records) < 2:
        warnings.warn("one document: no confidence interval (the bootstrap resamples documents)",
                      RuntimeWarning, stacklevel=3)
        return {}
    import numpy as np

    nll = np.array([r["nll"] for r in records], dtype=np.float64)
    units = [np.array([r[u] for r in records], dtype=np.float64) for u in _UNITS]

    def statistic(x, *denominators, axis=-1):
        total = x.sum(axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.stack([total / d.sum(axis) for d in denominators])

    low, high = percentile_bootstrap((nll, *units), statistic, samples=samples, level=level, seed=seed,
                                     paired=True, vectorized=True)
    out: dict[str, Any] = {"level": level, "method": f"percentile bootstrap over documents, {samples} resamples"}
    for name, metric in METRICS.items():
        k = _UNITS.index(metric.unit)
        if np.isfinite(low[k]) and np.isfinite(high[k]):
            out[name] = [metric.from_ratio(float(low[k])), metric.from_ratio(float(high[k]))]
    return out


def _check_same_documents(a: PerplexityResult, b: PerplexityResult) -> None:
    for r in (a, b):
        if not isinstance(r, PerplexityResult):
            raise ValueError(f"compare_results takes two PerplexityResult objects, got {type(r).__name__}")
    if a.n_documents != b.n_documents or len(a.per_document) != len(b.per_document):
        raise ValueError(f"the results are on different corpora ({a.n_documents} vs {b.n_documents} documents); "
                         f"evaluate both models on the same texts in the same order")
    for i, (x, y) in enumerate(zip(a.per_document, b.per_document, strict=True)):
        for key in ("id", "bytes", "sha256"):
            if x.get(key) != y.get(key):
                raise ValueError(f"document {i} differs between the results ({key}: {x.get(key)!r} vs "
                                 f"{y.get(key)!r}); evaluate both models on the same texts in the same order")
