"""Study: a resumable grid of models x recipes x seeds, with its inputs (``_inputs``), the overridable
steps of one run (``_steps``), the run-folder protocol (``_folder``) and the reports (``report``, with
``_rows`` and ``_plots``).

This concept is the top of the library below the CLI: it may import every other concept, and none
imports it.

Example::

    >>> from lowres_adapt import study
    >>> study.resolve_recipe("qlora").name
    'qlora'
"""

from ._engines import EXECUTORS, make_executor
from ._inputs import corpus_splits, load_parallel_file, resolve_language, resolve_recipe
from ._plan import plan_table
from .report import StudyResults
from .study import Study

__all__ = ["EXECUTORS", "Study", "StudyResults", "corpus_splits", "load_parallel_file", "make_executor",
           "plan_table", "resolve_language", "resolve_recipe"]
