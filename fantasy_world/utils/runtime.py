"""Device and precision choice: CUDA with bf16 when present, CPU in float32 otherwise."""

from __future__ import annotations

import torch

from fantasy_world.errors import InputError

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def pick_device(device: str | torch.device | None = None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"device={device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device={device!r}: CUDA is not available on this machine; use 'cpu' or 'auto'")
    return dev


def pick_dtype(device: torch.device, dtype: str | torch.dtype | None = None) -> torch.dtype:
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise InputError(f"dtype={dtype!r}: expected one of auto, {', '.join(sorted(_DTYPES))}")
    return _DTYPES[dtype]


def check_fp8(fp8: bool, device: torch.device) -> None:
    """FP8 mode needs float8 tensors on ``device``: CPU (emulated GEMMs) or CUDA (FP8 GEMMs on sm89+,
    weight-only FP8 below). Any dtype is allowed: the FP8 GEMM writes bf16, cast to the model dtype."""
    if not fp8:
        return
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"fp8 on device {device.type!r}: expected 'cpu' or 'cuda' (no float8 tensors there)")
    if not hasattr(torch, "float8_e4m3fn"):
        raise InputError(f"fp8 needs torch >= 2.1 (float8 tensors); this is torch {torch.__version__}")
