"""Error types a user can meet. Plain ``ValueError``/``FileNotFoundError`` are used where they fit;
these cover the cases that need their own name so callers can catch them. All derive from
``LowresAdaptError``, so one ``except`` catches every error of the library's own.

Example::

    >>> import lowres_adapt as la
    >>> issubclass(la.StudyConfigError, la.LowresAdaptError) and issubclass(la.StudyConfigError, ValueError)
    True
"""

from __future__ import annotations


class LowresAdaptError(Exception):
    """Base class of lowres-adapt's own errors."""


class QuantizationUnavailableError(LowresAdaptError, RuntimeError):
    """4-bit quantization (QLoRA) cannot run here: bitsandbytes is missing or has no backend for the device.

    The message says why and suggests ``LoRA`` instead."""


class TrainingDivergedError(LowresAdaptError, RuntimeError):
    """The training loss became NaN or infinite; the last good checkpoint is kept and named."""


class StudyConfigError(LowresAdaptError, ValueError):
    """A study's configuration is invalid or does not match the runs already in its output folder."""


class BackendUnavailableError(LowresAdaptError, ImportError):
    """An optional backend was asked for but its package is not installed; the message names the extra."""


class TokenizerConversionError(LowresAdaptError, ValueError):
    """A tokenizer loaded or converted from a published file does not match its source (vocabulary size,
    or the pieces of a probe text), or is too small to be real; the message names both sides and the fix."""
