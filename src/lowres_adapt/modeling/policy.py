"""How models load, decided once: the device, the dtype of a base for training (``default_base_load``) and
for evaluation or generation (``default_inference_load``), and whether weights fit on one GPU.

The policy, written down in docs/recipes.md ("How models load"): on CPU everything is fp32; on a GPU,
adapter recipes load a bf16 base (fp16 where the GPU has no bf16), full fine-tuning keeps fp32 master
weights under autocast, QLoRA loads the NF4 base, and evaluation and generation run in bf16/fp16 on the
GPU, spread over devices (``device_map="auto"``) when one cannot hold the weights.
"""

from __future__ import annotations

import os

# How a base is loaded, as results record it (``base_load``): a float dtype, or a 4-bit base (NF4 is QLoRA's).
BASE_LOADS = ("fp32", "bf16", "fp16", "nf4", "fp4")
_QUANTIZED_LOADS = ("nf4", "fp4")
_DTYPE_OF_LOAD = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
_LOAD_OF_DTYPE = {v: k for k, v in _DTYPE_OF_LOAD.items()}
QLORA_QUANTIZATION = {"quant_type": "nf4", "double_quant": True}  # QLoRA's base (Dettmers et al., 2023)


def training_device() -> str:
    """The device Trainer will use: "cuda" when a GPU is visible, else "cpu" (or "mps")."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def local_cuda_index() -> int:
    """This process's GPU: ``LOCAL_RANK`` under torchrun / accelerate launch, else 0.

    Every CUDA query and allocation made before Trainer sets the device goes to this index, so the ranks
    of a multi-GPU run do not all allocate on GPU 0 first.
    """
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def _gpu_has_bf16() -> bool:
    import torch

    major, _ = torch.cuda.get_device_capability(local_cuda_index())  # a query: no context on GPU 0
    return major >= 8


def default_base_load(*, quantize: bool, adapters: bool, device: str | None = None) -> str:
    """Returns how a recipe loads its base under the library's one policy: ``"fp32"``, ``"bf16"``,
    ``"fp16"`` or ``"nf4"``.

    QLoRA (``quantize``) loads the NF4 base. On CPU every other base is fp32. On a GPU, adapter recipes
    load a bf16 base (fp16 where the GPU has no bf16); full fine-tuning keeps fp32 master weights and
    trains under autocast.

    Example::

        >>> from lowres_adapt.modeling import default_base_load
        >>> [default_base_load(quantize=q, adapters=a, device="cpu") for q, a in [(False, False), (False, True), (True, True)]]
        ['fp32', 'fp32', 'nf4']
    """
    device = device or training_device()
    if quantize:
        return "nf4"
    if device != "cuda" or not adapters:
        return "fp32"
    return "bf16" if _gpu_has_bf16() else "fp16"


def default_inference_load(device: str | None = None) -> str:
    """How a model path loads for evaluation or generation when nothing says otherwise: bf16 on a GPU
    with bfloat16, fp16 on another GPU, fp32 on CPU."""
    device = device or training_device()
    if device != "cuda":
        return "fp32"
    return "bf16" if _gpu_has_bf16() else "fp16"


def compute_dtype(device: str | None = None) -> str:
    """The dtype 4-bit layers compute in: bf16/fp16 on a GPU, fp32 on CPU."""
    return _DTYPE_OF_LOAD[default_inference_load(device)]


def default_dtype(quantize: bool, adapters: bool) -> str:
    """The torch dtype name of ``default_base_load`` (the compute dtype for the NF4 base)."""
    load = default_base_load(quantize=quantize, adapters=adapters)
    return compute_dtype() if load == "nf4" else _DTYPE_OF_LOAD[load]


def weight_bytes(config, load: str) -> int:
    """Bytes of a model's weights under ``load``, from its config alone (parameters counted on the meta
    device; NF4 at about half a byte per weight of the linear layers plus their constants)."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    with init_empty_weights():
        meta = AutoModelForCausalLM.from_config(config)
    per = {"fp32": 4, "bf16": 2, "fp16": 2}.get(load, 2)  # 4-bit loads keep embeddings and norms in 16 bits
    total = 0
    for name, p in meta.named_parameters():
        quantized = load in _QUANTIZED_LOADS and p.dim() == 2 and "embed" not in name and "lm_head" not in name
        total += p.numel() * (0.5 + 4 / 64 if quantized else per)  # NF4 data + one fp32 absmax per 64 weights
    return int(total)


def inference_device_map(config, load: str):
    """This process's GPU when the weights fit there with room for activations, else ``"auto"``."""
    import torch

    index = local_cuda_index()
    free, _ = torch.cuda.mem_get_info(index)
    return {"": index} if weight_bytes(config, load) < 0.8 * free else "auto"
