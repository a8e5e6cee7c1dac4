"""The training loop around ``transformers.Trainer``: validated options, seeding, output folders and
resume, the divergence stop, the Trainer itself, and the run metrics (parameter counts, weight bytes,
peak memory)."""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._utils import did_you_mean
from ..data import ignored_labels
from ..errors import TrainingDivergedError
from ..modeling import training_device

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------ training
@dataclass
class TrainOptions:
    """The training settings ``recipe.train`` takes, validated before anything loads."""

    seed: int = 0
    max_steps: int = 100
    block_size: int = 256
    batch_size: int = 8
    learning_rate: float = 1e-4
    gradient_accumulation_steps: int = 1
    warmup_steps: int | float = 0
    lr_scheduler_type: str = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    bf16: bool | None = None
    eval_batch_size: int | None = None
    eval_steps: int | None = None
    save_steps: int | None = None
    save_total_limit: int | None = None
    logging_steps: int = 10
    report_to: str | list[str] = "none"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_int("seed", self.seed, 0)
        _check_int("max_steps", self.max_steps, 1)
        _check_int("block_size", self.block_size, 2)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("gradient_accumulation_steps", self.gradient_accumulation_steps, 1)
        _check_int("logging_steps", self.logging_steps, 1)
        for name in ("eval_batch_size", "eval_steps", "save_steps", "save_total_limit"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1)
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        w = self.warmup_steps
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0 or (isinstance(w, float) and w >= 1):
            raise ValueError(f"warmup_steps must be an int >= 0 or a float share in [0, 1), got {w!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.max_grad_norm < 0:
            raise ValueError(f"max_grad_norm must be >= 0 (0 disables clipping), got {self.max_grad_norm!r}")
        from transformers import SchedulerType

        known = [s.value for s in SchedulerType]
        if self.lr_scheduler_type not in known:
            raise ValueError(f"unknown lr_scheduler_type {self.lr_scheduler_type!r}"
                             f"{did_you_mean(self.lr_scheduler_type, known)}; known: {known}")
        self._check_extra()

    def _check_extra(self) -> None:
        from dataclasses import fields as dc_fields

        from transformers import TrainingArguments

        known = {f.name for f in dc_fields(TrainingArguments)}
        ours = {"per_device_train_batch_size": "batch_size", "per_device_eval_batch_size": "eval_batch_size",
                "max_steps": "max_steps", "learning_rate": "learning_rate", "seed": "seed",
                "output_dir": "output_dir", "gradient_accumulation_steps": "gradient_accumulation_steps",
                "warmup_steps": "warmup_steps", "lr_scheduler_type": "lr_scheduler_type",
                "save_steps": "save_steps", "eval_steps": "eval_steps", "logging_steps": "logging_steps",
                "gradient_checkpointing": "gradient_checkpointing", "bf16": "bf16", "report_to": "report_to",
                "resume_from_checkpoint": "resume_from_checkpoint"}
        for key in self.extra:
            if key in ours:
                raise ValueError(f"pass {ours[key]}=... to train() rather than the TrainingArguments field {key!r}")
            if key not in known:
                raise ValueError(f"unknown training argument {key!r}{did_you_mean(key, known)}: extra keywords of "
                                 "train() go to transformers.TrainingArguments")
        if self.extra.get("logging_nan_inf_filter"):
            raise ValueError("logging_nan_inf_filter=True would hide the NaN loss that stops a diverged run; "
                             "leave it out")


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def seed_everything(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)


def make_output_dir(output_dir) -> Path:
    if output_dir is None:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError("with several processes every rank must write to the same folder: pass output_dir=...")
        return Path(tempfile.mkdtemp(prefix="lowres-adapt-run-"))
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"output_dir {str(path)!r} is a file; pass a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_resume(resume, output_dir: Path) -> None:
    if resume is True:
        from transformers.trainer_utils import get_last_checkpoint

        if get_last_checkpoint(str(output_dir)) is None:
            raise ValueError(f"resume_from_checkpoint=True but {str(output_dir)!r} has no checkpoint-N folder; "
                             "train with save_steps=... first, or pass a checkpoint path")
    elif resume not in (None, False) and not Path(resume).is_dir():
        raise FileNotFoundError(f"resume_from_checkpoint {str(resume)!r} is not a folder; pass a checkpoint-N "
                                "folder written with save_steps=..., or True for the latest")


class DivergenceCallback:
    """Stops training with ``TrainingDivergedError`` at the first non-finite logged training loss.

    The loss logged at step N is computed with the weights of ``checkpoint-(N-1)``, so a checkpoint is
    known good only once the step after it logged a finite loss. To make that check exact the callback
    forces a log on every step that saves or evaluates and on the step right after a save.
    """

    def __init__(self) -> None:
        self.last_logged_step = 0
        self._saved_before = False

    # TrainerCallback hooks (duck-typed: Trainer calls the ones it knows; see _callback_class below)
    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save or control.should_evaluate or control.should_training_stop or self._saved_before:
            control.should_log = True
        self._saved_before = bool(control.should_save)
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is None:
            return control
        if not math.isfinite(loss):
            first = self.last_logged_step + 1
            steps = f"step {state.global_step}" if first >= state.global_step else \
                f"steps {first}..{state.global_step}"
            # the first step that may have gone bad used the weights saved after the step before it
            good = last_checkpoint(args.output_dir, before=first - 2)
            where = (f"the last good checkpoint is {good} (resume with resume_from_checkpoint={str(good)!r})"
                     if good else "no good checkpoint was saved before it (pass save_steps=N to keep some)")
            raise TrainingDivergedError(
                f"training loss became {loss} in {steps}; {where}. Lower learning_rate (was "
                f"{args.learning_rate:g}), add warmup_steps, or keep gradient clipping (max_grad_norm)"
            )
        self.last_logged_step = state.global_step
        return control


def last_checkpoint(output_dir, before: int) -> Path | None:
    """The ``checkpoint-N`` folder in ``output_dir`` with the largest N <= ``before``, or None."""
    best = None
    for p in Path(output_dir).glob("checkpoint-*"):
        m = re.fullmatch(r"checkpoint-(\d+)", p.name)
        if m and p.is_dir() and int(m.group(1)) <= before and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), p)
    return None if best is None else best[1]


def _callback_class():
    from transformers import TrainerCallback

    return type("DivergenceCallback", (DivergenceCallback, TrainerCallback), {})


def build_trainer(model, tokenizer, train_ds, eval_ds, opts: TrainOptions, output_dir: Path, *,
                  optimizer=None, callbacks: list | None = None, packing: str | None = "isolated",
                  start_id: int | None = None):
    """Returns a ``transformers.Trainer`` with the library's defaults, the divergence callback and collator
    (``packing``: ``"isolated"``, ``"concatenated"`` or None for pre-tokenized examples)."""
    packed = packing is not None
    import torch
    from transformers import Trainer, TrainingArguments

    bf16 = opts.bf16
    if bf16 is None:
        bf16 = training_device() == "cuda" and torch.cuda.is_bf16_supported()
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=opts.max_steps,
        per_device_train_batch_size=opts.batch_size,
        per_device_eval_batch_size=opts.eval_batch_size or opts.batch_size,
        gradient_accumulation_steps=opts.gradient_accumulation_steps,
        learning_rate=opts.learning_rate,
        weight_decay=opts.weight_decay,
        warmup_steps=opts.warmup_steps,
        lr_scheduler_type=opts.lr_scheduler_type,
        max_grad_norm=opts.max_grad_norm,
        logging_steps=opts.logging_steps,
        logging_nan_inf_filter=False,  # the divergence check must see NaN/inf losses
        save_strategy="steps" if opts.save_steps else "no",
        save_steps=opts.save_steps or 500,
        save_total_limit=opts.save_total_limit,
        eval_strategy="steps" if (opts.eval_steps and eval_ds is not None) else "no",
        eval_steps=opts.eval_steps,
        seed=opts.seed,
        data_seed=opts.seed,
        bf16=bf16,
        report_to=opts.report_to,
        remove_unused_columns=False,  # the collator builds exactly what the model takes
        # packed blocks hold EOS (= pad for many tokenizers) as real tokens: count them all
        include_num_input_tokens_seen="all" if packed else "non_padding",
        # use_cpu: without it accelerate never starts multi-CPU DDP (gloo) under torchrun/accelerate launch
        **{"dataloader_pin_memory": training_device() == "cuda", "use_cpu": training_device() == "cpu",
           **opts.extra},
    )
    cb = _callback_class()()
    return Trainer(
        model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
        data_collator=collator(tokenizer, packing, start_id), processing_class=tokenizer,
        callbacks=[cb, *(callbacks or [])], optimizers=(optimizer, None),
    )


def collator(tokenizer, packing: str | None, start_id: int | None = None):
    """The batch builder. Packed blocks (all ``block_size`` long) are stacked as they are:

    - ``"concatenated"``: the inputs are the labels;
    - ``"isolated"``: the blocks' ``position_ids`` go to the model with no attention mask and
      ``use_cache=False``, so transformers builds the block-diagonal causal mask (each document attends
      to itself only; ``transformers.masking_utils.find_packed_sequence_indices``), and the labels that
      would be predicted across a document boundary are -100 (``data.ignored_labels``; ``start_id`` is
      the constant document start token, which stays a target).

    Examples of any length (``packing=None``) go through transformers' ``DataCollatorForSeq2Seq`` (inputs
    padded with the pad token, labels with -100, an attention mask over the real tokens); isolated blocks
    in such a run (``eval_texts`` next to a ``train_dataset``) are still stacked as isolated blocks."""
    from transformers import DataCollatorForSeq2Seq

    if packing == "concatenated":
        return _stack_blocks
    isolated = functools.partial(_stack_isolated_blocks, start_id=start_id)
    if packing == "isolated":
        return isolated
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has neither a pad nor an eos token; set tokenizer.pad_token first")
        tokenizer.pad_token = tokenizer.eos_token
    padded = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100, return_tensors="pt")
    return lambda examples: isolated(examples) if "position_ids" in examples[0] else padded(examples)


def _stack_blocks(examples: list[dict[str, Any]]) -> dict[str, Any]:
    import torch

    ids = torch.tensor([list(e["input_ids"]) for e in examples], dtype=torch.long)
    return {"input_ids": ids, "labels": ids.clone()}


def _stack_isolated_blocks(examples: list[dict[str, Any]], start_id: int | None) -> dict[str, Any]:
    import torch

    ids = torch.tensor([list(e["input_ids"]) for e in examples], dtype=torch.long)
    pos = torch.tensor([list(e["position_ids"]) for e in examples], dtype=torch.long)
    labels = ids.masked_fill(ignored_labels(ids, pos, start_id), -100)
    # no attention_mask and no cache: with either, transformers would not read the restarting positions
    return {"input_ids": ids, "position_ids": pos, "labels": labels, "use_cache": False}


# ------------------------------------------------------------------------------------ isolation check
def isolation_failure(model) -> str | None:
    """Returns None when ``model`` keeps packed documents apart, else why not (a sentence for a warning).

    A cheap probe on the model itself (eval mode, no gradients, three forward passes of a few dozen
    tokens): two rows pack a document B after different documents A and A'; with restarting position
    ids and no mask B's logits must not depend on what came before it (rows equal), and must equal B's
    logits alone (positions restart). An architecture or attention implementation that ignores the
    position ids (or builds its own causal mask) fails one of the two.
    """
    import torch

    embeddings = model.get_input_embeddings()
    vocab, device = embeddings.weight.shape[0], embeddings.weight.device
    gen = torch.Generator().manual_seed(0)
    n_a, n_b = 24, 8
    a = torch.randint(0, vocab, (2, n_a), generator=gen)
    b = torch.randint(0, vocab, (1, n_b), generator=gen).expand(2, -1)
    ids = torch.cat([a, b], dim=1).to(device)
    pos = torch.cat([torch.arange(n_a), torch.arange(n_b)]).expand(2, -1).to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. GPT-2's "pad token without an attention mask"
            packed = model(input_ids=ids, position_ids=pos, use_cache=False).logits[:, n_a:].float()
            alone = model(input_ids=b[:1].to(device), use_cache=False).logits[0].float()
    finally:
        model.train(was_training)
    scale = float(alone.abs().max()) or 1.0
    # 16-bit or 4-bit (uint8-stored) weights: rounding differs between the two shapes, contamination does not
    low = bool({p.dtype for p in model.parameters()} & {torch.float16, torch.bfloat16, torch.uint8})
    tol = scale * (5e-2 if low else 1e-4)
    config = getattr(model, "config", None)
    what = (f"{getattr(config, 'model_type', type(model).__name__)} with attention "
            f"{getattr(config, '_attn_implementation', None)!r}")
    cross = float((packed[0] - packed[1]).abs().max())
    if cross > tol:
        return (f"{what} lets a packed document attend to the one before it (its logits moved by {cross:.3g} "
                f"when that document changed)")
    shift = float((packed[0] - alone).abs().max())
    if shift > tol:
        return (f"{what} ignores restarting position ids (a packed document's logits differ from its logits "
                f"alone by {shift:.3g})")
    return None


# ------------------------------------------------------------------------------------ metrics
def count_parameters(model) -> dict[str, int]:
    """``{"trainable", "total"}`` counted as PEFT counts them (bitsandbytes 4-bit weights unpacked)."""
    from peft import PeftModel

    trainable, total = PeftModel.get_nb_trainable_parameters(model)  # only uses model.named_parameters()
    return {"trainable": int(trainable), "total": int(total)}


def weight_bytes(model) -> int:
    """Bytes held by the model's parameters as stored (4-bit weights take half a byte per weight)."""
    return int(sum(p.numel() * p.element_size() for p in model.parameters()))


def reset_peak_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory() -> tuple[int, str]:
    """(bytes, kind): CUDA max allocated since the reset, or the process's peak resident memory on CPU."""
    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated()), "cuda_max_allocated"
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024), "cpu_process_peak_rss"


def save_pissa_init(model, output_dir: Path) -> Path:
    """Saves the freshly initialised PiSSA adapter so the trained one can be saved as plain LoRA for the
    original base (PEFT's ``path_initial_model_for_weight_conversion``)."""
    from accelerate import PartialState

    init_dir = output_dir / "pissa_init"
    cfg = model.peft_config[model.active_adapter]
    orig = cfg.init_lora_weights
    cfg.init_lora_weights = True  # PEFT's recipe: the saved initial adapter is a plain LoRA one
    try:
        model.save_pretrained(str(init_dir), is_main_process=PartialState().is_main_process)
    finally:
        cfg.init_lora_weights = orig
    return init_dir
