"""Opt-in FP8 inference (``fp8=True`` / ``--fp8``): FP8 linear layers, which layers, FP8 files."""

from fantasy_world.quant.fp8_linear import FP8Linear, enable_fp8_gemm, fp8_gemm_available, quantize_rows
from fantasy_world.quant.fp8_state import (
    FP8_FORMAT,
    fit_state_to_model,
    fp8_state_dict,
    normalize_fp8_layout,
    save_fp8_weights,
    state_bytes,
)
from fantasy_world.quant.selection import (
    dequantize_model,
    fp8_layer_names,
    is_quantized,
    quantize_model,
    quantized_layers,
)

__all__ = [
    "FP8_FORMAT",
    "FP8Linear",
    "dequantize_model",
    "enable_fp8_gemm",
    "fit_state_to_model",
    "fp8_gemm_available",
    "fp8_layer_names",
    "fp8_state_dict",
    "is_quantized",
    "normalize_fp8_layout",
    "quantize_model",
    "quantize_rows",
    "quantized_layers",
    "save_fp8_weights",
    "state_bytes",
]
