"""``LoRA`` (and its variants DoRA, rsLoRA, PiSSA, LoRA+) and ``QLoRA``, which is LoRA on a 4-bit base.

QLoRA is not a second code path: it is ``LoRA`` with ``quantize_base=True`` (torchtune's design). The
base is loaded by transformers with bitsandbytes NF4 weights and double quantization (compute dtype bf16
on a bf16 GPU, fp32 on CPU), prepared with PEFT's ``prepare_model_for_kbit_training`` and trained with
non-reentrant gradient checkpointing. Everything else (targets, variants, saving) is shared.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .._utils import did_you_mean, token_id
from ..modeling import loading
from . import _targets
from .base import OMIT_IF_DEFAULT, AdaptationRecipe, meta_model

logger = logging.getLogger(__name__)

VARIANTS = (None, "dora", "rslora", "pissa")
# Variants whose adapter init reads the base weights in float (PiSSA: their SVD). PEFT runs PiSSA only on
# float32/16/bf16 weights; under a 4-bit base it fails after the quantized model has loaded. (PEFT's other
# weight-reading inits, CorDA, EVA and LoRA-GA, are not variants here; OLoRA and LoftQ handle 4-bit bases.)
_FLOAT_WEIGHT_VARIANTS = ("pissa",)
_TARGET_SHORTHANDS = ("auto", "all-linear")
_BIASES = ("none", "all", "lora_only")
_QUANT_TYPES = ("nf4", "fp4")


@dataclass
class LoRA(AdaptationRecipe):
    """Low-rank adapters (PEFT LoRA) on a frozen base; ``variant`` picks DoRA, rsLoRA or PiSSA.

    Example::

        >>> import lowres_adapt as la
        >>> la.LoRA(r=8, variant="dora")
        LoRA(r=8, alpha=16.0, dropout=0.05, target_modules='auto', variant='dora', loraplus_lr_ratio=None, bias='none', modules_to_save=(), trainable_token_indices=None, ensure_weight_tying=False, quantize_base=False, quant_type='nf4', double_quant=True)
        >>> la.LoRA(r=0)
        Traceback (most recent call last):
        ...
        ValueError: r must be a positive integer (the adapter rank), got 0
    """

    r: int = field(default=8, metadata={"help": "Adapter rank: trainable parameters grow linearly with it."})
    alpha: float = field(
        default=16.0,
        metadata={"help": "LoRA scaling numerator: the update is scaled by alpha/r (alpha/sqrt(r) with rslora). "
                          "16 with r=8 is the common 2x-rank default."},
    )
    dropout: float = field(default=0.05, metadata={"help": "Dropout on the adapter input, in [0, 1)."})
    target_modules: str | tuple[str, ...] = field(
        default="auto",
        metadata={"help": "'auto': the attention projections of the architecture in hand; 'all-linear': also "
                          "the MLP projections (never the LM head); or a list of module-name suffixes."},
    )
    variant: str | None = field(
        default=None,
        metadata={"help": "None (plain LoRA), 'dora' (weight-decomposed), 'rslora' (rank-stabilised scaling "
                          "alpha/sqrt(r)) or 'pissa' (init from the principal singular vectors; the saved "
                          "adapter is converted to plain LoRA for the original base)."},
    )
    loraplus_lr_ratio: float | None = field(
        default=None,
        metadata={"help": "LoRA+: the B matrices learn this many times faster than A (the paper uses 16); "
                          "None for one learning rate."},
    )
    bias: str = field(default="none", metadata={"help": "'none', 'all' or 'lora_only' (PEFT's bias training)."})
    modules_to_save: tuple[str, ...] = field(
        default=(),
        metadata={"help": "Modules trained in full next to the adapters (e.g. ['wte'] or ['embed_tokens', "
                          "'lm_head'] after a vocabulary extension)."},
    )
    trainable_token_indices: Any = field(
        default=None,
        metadata={"help": "PEFT trainable_token_indices: a list of token ids (rows of the input embedding) or "
                          "{module_name: [ids]}, to train only new vocabulary rows."},
    )
    ensure_weight_tying: bool = field(
        default=False,
        metadata={"help": "PEFT ensure_weight_tying: keep a tied input embedding and LM head tied when both are in "
                          "modules_to_save (one trained copy, as in the base); new_token_peft_kwargs("
                          "how='modules_to_save') sets it.", OMIT_IF_DEFAULT: True},
    )
    quantize_base: bool = field(
        default=False,
        metadata={"help": "Load the base in 4 bits with bitsandbytes (QLoRA). QLoRA() sets it."},
    )
    quant_type: str = field(default="nf4", metadata={"help": "4-bit data type: 'nf4' (QLoRA) or 'fp4'."})
    double_quant: bool = field(
        default=True, metadata={"help": "Quantize the quantization constants too (QLoRA's double quantization)."},
    )

    name: ClassVar[str] = "lora"
    default_learning_rate: ClassVar[float] = 2e-4
    _adapters: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r <= 0:
            raise ValueError(f"r must be a positive integer (the adapter rank), got {self.r!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or self.alpha <= 0:
            raise ValueError(f"alpha must be a positive number, got {self.alpha!r}")
        self.alpha = float(self.alpha)
        if not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        self.dropout = float(self.dropout)
        if isinstance(self.target_modules, str):
            if self.target_modules not in _TARGET_SHORTHANDS:
                raise ValueError(f"target_modules must be 'auto', 'all-linear' or a list of module names, got "
                                 f"{self.target_modules!r}{did_you_mean(self.target_modules, _TARGET_SHORTHANDS)}; "
                                 f"for one module write [{self.target_modules!r}]")
        else:
            self.target_modules = tuple(self.target_modules)
            if not self.target_modules or not all(isinstance(t, str) and t for t in self.target_modules):
                raise ValueError(f"target_modules must be a non-empty list of module names, got {self.target_modules!r}")
        if isinstance(self.variant, str) and self.variant.lower() in ("none", "lora", ""):
            self.variant = None
        if self.variant not in VARIANTS:
            known = [v for v in VARIANTS if v]
            raise ValueError(f"unknown LoRA variant {self.variant!r}{did_you_mean(self.variant, known)}; "
                             f"known variants: None, {', '.join(map(repr, known))}")
        if self.loraplus_lr_ratio is not None and (
            isinstance(self.loraplus_lr_ratio, bool) or not isinstance(self.loraplus_lr_ratio, (int, float))
            or self.loraplus_lr_ratio <= 0
        ):
            raise ValueError(f"loraplus_lr_ratio must be a positive number or None, got {self.loraplus_lr_ratio!r}")
        if self.bias not in _BIASES:
            raise ValueError(f"bias must be one of {_BIASES}, got {self.bias!r}")
        if isinstance(self.modules_to_save, str):
            self.modules_to_save = (self.modules_to_save,)
        self.modules_to_save = tuple(self.modules_to_save or ())
        tti = self.trainable_token_indices
        if isinstance(tti, dict):
            self.trainable_token_indices = {
                str(k): tuple(token_id(i, f"trainable_token_indices[{k!r}][{j}]") for j, i in enumerate(v))
                for k, v in tti.items()}
        elif tti is not None:
            self.trainable_token_indices = tuple(token_id(i, f"trainable_token_indices[{j}]")
                                                 for j, i in enumerate(tti))
        if self.quant_type not in _QUANT_TYPES:
            raise ValueError(f"quant_type must be one of {_QUANT_TYPES}, got {self.quant_type!r}")
        if not isinstance(self.ensure_weight_tying, bool):
            raise ValueError(f"ensure_weight_tying must be True or False, got {self.ensure_weight_tying!r}")
        if not isinstance(self.quantize_base, bool):
            raise ValueError(f"quantize_base must be True or False, got {self.quantize_base!r}")
        if self.quantize_base and self.variant in _FLOAT_WEIGHT_VARIANTS:
            raise ValueError(f"variant={self.variant!r} initialises the adapters from the float base weights (their "
                             "SVD), which a 4-bit base does not have; use LoRA(variant='pissa') on a full-precision "
                             "base, or QLoRA with variant=None, 'dora' or 'rslora'")
        if not self.quantize_base and (self.quant_type != "nf4" or self.double_quant is not True):
            warnings.warn("quant_type/double_quant are ignored unless quantize_base=True (use QLoRA)",
                          UserWarning, stacklevel=3)

    # ------------------------------------------------------------------------------ recipe hooks
    def _quantization(self) -> dict[str, Any] | None:
        if not self.quantize_base:
            return None
        return {"quant_type": self.quant_type, "double_quant": self.double_quant}

    def _adapt(self, model, *, gradient_checkpointing: bool = False, for_counting: bool = False) -> Any:
        from peft import LoraConfig, get_peft_model

        if loading.is_peft(model):
            return self._continue(model, gradient_checkpointing)
        if getattr(model, "is_loaded_in_4bit", False) and not for_counting:
            from peft import prepare_model_for_kbit_training

            # freezes the base, upcasts norms/embeddings to fp32; checkpointing is enabled below (non-reentrant)
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        targets = self._resolve_targets(model)
        config = LoraConfig(
            r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=list(targets),
            bias=self.bias, task_type="CAUSAL_LM",
            use_dora=self.variant == "dora", use_rslora=self.variant == "rslora",
            # PiSSA's SVD would be wasted (and cannot run) on meta weights when only counting
            init_lora_weights="pissa" if (self.variant == "pissa" and not for_counting) else True,
            fan_in_fan_out=_targets_conv1d(model, targets),
            modules_to_save=list(self.modules_to_save) or None,
            trainable_token_indices=_plain_indices(self.trainable_token_indices),
            ensure_weight_tying=self.ensure_weight_tying,
        )
        model = get_peft_model(model, config)
        if gradient_checkpointing and not for_counting:
            loading.enable_checkpointing(model)
        model.train()
        return model

    def _continue(self, model, gradient_checkpointing: bool):
        """A PeftModel that already holds an adapter: keep training its active adapter (staged training).
        ``_check_source`` has made sure the adapter was made with this recipe's settings."""
        adapter = model.active_adapter
        for name, param in model.named_parameters():
            param.requires_grad = f".{adapter}." in f"{name}."
        if not any(p.requires_grad for p in model.parameters()):
            raise ValueError(f"the PeftModel's adapter {adapter!r} has no parameters to train")
        if gradient_checkpointing:
            loading.enable_checkpointing(model)
        model.train()
        return model

    # ------------------------------------------------------------------------------ continuing an adapter
    @classmethod
    def from_adapter(cls, adapter) -> LoRA:
        """Returns the recipe whose settings trained ``adapter`` (a PEFT adapter folder or a ``PeftModel``):
        rank, alpha, dropout, variant, targets, bias, modules to save. Train it on the adapter to continue
        it with its own settings; the run's record then shows them.

        Example::

            >>> import tempfile, json, pathlib, lowres_adapt as la
            >>> folder = pathlib.Path(tempfile.mkdtemp())
            >>> _ = (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4,
            ...     "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": ["v_proj", "q_proj"]}))
            >>> la.LoRA.from_adapter(folder).to_dict()["target_modules"], la.LoRA.from_adapter(folder).alpha
            (['q_proj', 'v_proj'], 8.0)
        """
        settings = _adapter_settings(_adapter_config(adapter))
        return cls(**settings)

    def _check_source(self, source: loading.ModelSource) -> None:
        """Refuses to continue an adapter made with other settings (before any weights load): the run would
        train the adapter's settings and record this recipe's."""
        if not source.has_adapter:
            return
        cfg = _adapter_config(source.adapter_path or source.model)
        theirs = _adapter_settings(cfg)
        ours = {k: getattr(self, k) for k in theirs}
        if set(ours["modules_to_save"]) == set(theirs["modules_to_save"]):
            ours["modules_to_save"] = theirs["modules_to_save"]
        if isinstance(self.target_modules, str):  # "auto"/"all-linear": what they pick on this architecture
            base = (source.model.get_base_model() if loading.is_peft(source.model) else source.model) \
                if source.model is not None else meta_model(source.config)
            ours["target_modules"] = tuple(sorted(self._resolve_targets(base)))
        else:
            ours["target_modules"] = tuple(sorted(self.target_modules))
        differ = [k for k in theirs if ours[k] != theirs[k]]
        if not differ:
            return
        where = repr(source.adapter_path) if source.adapter_path else "the PeftModel's active adapter"
        pairs = "; ".join(f"{k}: adapter {_show(theirs[k])}, recipe {_show(ours[k])}" for k in differ)
        raise ValueError(
            f"{where} was trained with other settings than this recipe ({pairs}). Continuing it would train the "
            f"adapter's settings and record the recipe's. To continue it with its own settings use "
            f"{type(self).__name__}.from_adapter({source.adapter_path or 'model'!r}).train(...) (the record then "
            "shows them); to train this recipe, start from the base model instead")

    def _resolve_targets(self, model) -> list[str]:
        if self.target_modules == "auto":
            return _targets.find_target_modules(model, "attention")
        if self.target_modules == "all-linear":
            return _targets.find_target_modules(model, "all-linear")
        _targets.check_target_modules(model, self.target_modules)
        return list(self.target_modules)

    def _optimizer(self, model, learning_rate: float, weight_decay: float):
        if self.loraplus_lr_ratio is None:
            return None
        import torch
        from peft.optimizers import create_loraplus_optimizer

        return create_loraplus_optimizer(model, torch.optim.AdamW, lr=learning_rate,
                                         loraplus_lr_ratio=self.loraplus_lr_ratio, weight_decay=weight_decay)

    def _save(self, trainer, output_dir: Path, state: dict[str, Any]) -> None:
        init_dir = state.get("pissa_init")
        with warnings.catch_warnings():
            if init_dir is not None:  # PEFT warns that PiSSA changed the base: the conversion below answers it
                warnings.filterwarnings("ignore", message="PiSSA changes the base weights")
            trainer.save_model(str(output_dir))  # adapter (PEFT format) + tokenizer
        if init_dir is not None and trainer.is_world_process_zero():
            # Save the trained PiSSA adapter as plain LoRA (rank 2r) that applies to the *original* base.
            trainer.model.save_pretrained(str(output_dir), path_initial_model_for_weight_conversion=str(init_dir))

    def _merge(self, trainer, output_dir: Path, state: dict[str, Any]):
        """Returns the adapter merged into a full-precision base; also saved to ``output_dir/merged``.

        QLoRA: merging into 4-bit weights would round the update away, so the base is loaded again in
        the compute dtype (bf16/fp16 on a GPU, on this process's GPU or spread with ``device_map="auto"``;
        fp32 on CPU) by the main process only; other ranks of a multi-GPU run return their unmerged model.
        """
        if self.quantize_base:
            if not trainer.is_world_process_zero():
                return trainer.model
            from peft import PeftModel

            source: loading.ModelSource = state["source"]
            load = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(state.get("dtype") or "", None)
            base, _ = loading.load_for_inference(source.path, source.tokenizer, load=load, model_kwargs=source.options)
            merged = PeftModel.from_pretrained(base, str(output_dir)).merge_and_unload()
        else:
            merged = trainer.model.merge_and_unload()
        if trainer.is_world_process_zero():
            merged.save_pretrained(str(output_dir / "merged"))
            trainer.processing_class.save_pretrained(str(output_dir / "merged"))
        return merged


@dataclass
class QLoRA(LoRA):
    """LoRA on a 4-bit NF4 base with double quantization (QLoRA): ``LoRA`` with ``quantize_base=True``.

    Where bitsandbytes cannot quantize on this machine, ``train``/``prepare`` raise
    ``QuantizationUnavailableError`` and suggest ``LoRA``.

    Example::

        >>> import lowres_adapt as la
        >>> la.QLoRA(r=8).to_dict()["quantize_base"]
        True
    """

    quantize_base: bool = field(default=True, metadata={"help": "Always True for QLoRA (use LoRA otherwise)."})

    name: ClassVar[str] = "qlora"

    def __post_init__(self) -> None:
        if self.quantize_base is not True:
            raise ValueError(f"QLoRA always quantizes the base (quantize_base=True), got {self.quantize_base!r}; "
                             "use LoRA for a full-precision base")
        super().__post_init__()


def _adapter_config(adapter) -> dict[str, Any]:
    """The LoRA config of a PEFT adapter folder (``adapter_config.json``) or a PeftModel's active adapter."""
    if loading.is_peft(adapter):
        return adapter.peft_config[adapter.active_adapter].to_dict()
    import json

    path = Path(adapter) / "adapter_config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{str(adapter)!r} holds no adapter_config.json; pass the folder a LoRA run saved "
                                "its adapter to (its output_dir)")
    cfg = json.loads(path.read_text(encoding="utf-8"))
    if str(cfg.get("peft_type", "LORA")).upper() != "LORA":
        raise ValueError(f"{str(adapter)!r} holds a {cfg.get('peft_type')} adapter, not LoRA")
    return cfg


def _adapter_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """The LoRA fields a PEFT LoraConfig (as a dict) stands for."""
    targets = cfg.get("target_modules")
    if isinstance(targets, str) or not targets:
        raise ValueError(f"the adapter's target_modules is {targets!r} (a pattern, not a list of module names); "
                         "this recipe can only continue adapters with listed target modules")
    init = cfg.get("init_lora_weights", True)
    variant = ("dora" if cfg.get("use_dora") else "rslora" if cfg.get("use_rslora")
               else "pissa" if isinstance(init, str) and init.startswith("pissa") else None)
    return {"r": int(cfg["r"]), "alpha": float(cfg.get("lora_alpha", 8)), "dropout": float(cfg.get("lora_dropout", 0.0)),
            "variant": variant, "target_modules": tuple(sorted(targets)), "bias": cfg.get("bias", "none"),
            "modules_to_save": tuple(cfg.get("modules_to_save") or ())}


def _show(value: Any) -> str:
    return repr(list(value) if isinstance(value, tuple) else value)


def _targets_conv1d(model, targets) -> bool:
    """GPT-2's Conv1D stores weights transposed: PEFT needs fan_in_fan_out=True for them."""
    from transformers.pytorch_utils import Conv1D

    return any(isinstance(m, Conv1D) for n, m in model.named_modules()
               if any(n == t or n.endswith("." + t) for t in targets))


def _plain_indices(tti):
    if tti is None:
        return None
    if isinstance(tti, dict):
        return {k: list(v) for k, v in tti.items()}
    return list(tti)
