"""Drift: does generated text stay in the target language? A detector that segments text, identifies the
language of each segment (a character n-gram backend by default, or fastText's lid.176 when named) and reports where
and into which language the text switched.

Modules: ``detector`` (``DriftDetector``), ``_langid`` (the language-ID backends), ``_text`` (segments and
words), ``_scoring`` (evidence per segment), ``_results`` (``DriftAnalysis`` and the flagged examples).

This concept imports only ``modeling`` (for ``generate``), ``data``, ``languages``, ``errors`` and ``_utils``.

Example::

    >>> from lowres_adapt import drift
    >>> drift.DriftDetector(target="ba", backend="ngram").analyze("Беҙ бында йәшәйбеҙ.").drifted
    False
"""

from ..modeling import generate
from ._results import UNDETERMINED, DriftAnalysis, flagged_examples
from .detector import DriftDetector, resolve_backend

__all__ = ["UNDETERMINED", "DriftAnalysis", "DriftDetector", "flagged_examples", "generate", "resolve_backend"]
