"""The one place that turns a ``precision`` param (``auto | fp32 | bf16``) into a torch dtype.

Used by ``train`` (base weights; LoRA weights and optimizer state stay fp32) and by generation in
``evaluate`` and ``ask --hf``. ``auto`` means bf16 where the hardware runs it natively, else fp32:
a CUDA GPU with bf16, or a CPU with AVX512-BF16 or AMX-BF16 (there torch's bf16 matrix products run at
≈ 1 TFLOP/s against ≈ 90 GFLOP/s in fp32). Elsewhere bf16 is emulated and slower than fp32, so ``auto``
stays fp32 and loses nothing.
"""

from __future__ import annotations


# oneDNN, which runs torch's bf16 matrix products on CPU, uses bf16 instructions only up to
# $ONEDNN_MAX_CPU_ISA; below these levels it emulates bf16 (≈ 2 GFLOP/s against ≈ 180 in fp32, measured).
ONEDNN_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_AMX", "AVX10", "ALL")


def native_bf16(has_cuda: bool) -> bool:
    """Whether this machine computes bf16 matrix products in hardware."""
    import os

    import torch

    if has_cuda:
        return torch.cuda.is_bf16_supported()
    capped = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    if not capped.startswith(ONEDNN_BF16_ISAS):  # e.g. AVX2: how an AVX2-only CPU is emulated on a newer one
        return False
    caps = torch.cpu.get_capabilities()
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def resolve(requested: str, has_cuda: bool, native: bool | None = None) -> str:
    """``fp32`` or ``bf16`` for this request on this machine (``native`` overrides detection, for tests)."""
    if requested != "auto":
        return requested
    return "bf16" if (native_bf16(has_cuda) if native is None else native) else "fp32"


def dtype(name: str):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16}[name]


def device() -> str:
    """Where models answer: the CUDA GPU if one is visible, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_dtype(requested: str):
    """The torch dtype for a ``precision`` param on this machine (CUDA if visible, else the CPU)."""
    import torch

    return dtype(resolve(requested, torch.cuda.is_available()))
