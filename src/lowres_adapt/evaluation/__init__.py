"""Evaluation: perplexity that compares across tokenizers (bits per byte, word perplexity) with seeded
bootstrap intervals over documents, and downstream multiple-choice tasks scored by log-likelihood.

Long documents are scored in rolling windows (``_windows``); both evaluators share the model-context,
prefix-token and bootstrap helpers of ``_common``.

This concept imports only ``data``, ``errors`` and ``_utils``.

Example::

    >>> from lowres_adapt import evaluation
    >>> evaluation.METRICS["bits_per_byte"].higher_is_better
    False
"""

from .downstream import MultipleChoiceItem, MultipleChoiceResult, MultipleChoiceTask, evaluate_multiple_choice
from .perplexity import METRICS, Metric, PerplexityEvaluator, PerplexityResult, compare_results

__all__ = [
    "METRICS", "Metric", "MultipleChoiceItem", "MultipleChoiceResult", "MultipleChoiceTask", "PerplexityEvaluator",
    "PerplexityResult", "compare_results", "evaluate_multiple_choice",
]
