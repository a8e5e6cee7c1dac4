"""Planning: how much accelerator memory (and time) a training run needs, before any weight is downloaded.

``plan_memory`` builds the model on the meta device from its config (``_model``), adapts it as the recipe
would, and simulates one training step (``_step``) to find the activation peak. The measured peak of a real
run (recorded by the trainer) is what the plan is held to.

This concept imports ``recipes`` and ``modeling`` below it, never ``study`` or ``cli``.

Example::

    >>> import transformers
    >>> from lowres_adapt import planning, recipes
    >>> cfg = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=1000)
    >>> plan = planning.plan_memory(cfg, recipes.LoRA(r=8), batch_size=2, block_size=64)
    >>> plan.total > 0
    True
"""

from .plan import (
    OPTIMIZERS,
    SHARDING,
    MemoryPlan,
    optimizer_state_bytes,
    parse_bytes,
    plan_for_run,
    plan_memory,
)

__all__ = ["OPTIMIZERS", "SHARDING", "MemoryPlan", "optimizer_state_bytes", "parse_bytes", "plan_for_run", "plan_memory"]
