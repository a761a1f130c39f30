"""FP8 linear layer: e4m3 weights with per-output-channel scales, per-row dynamic activation scales.

Why this layout: it is what ``torch._scaled_mm`` multiplies natively on FP8 tensor cores (Ada / Hopper,
compute capability >= 8.9) with "row-wise" scaling: activations ``A [M, K]`` with one scale per row
(token) and weights ``W [N, K]`` with one scale per output channel, accumulated in fp32, written in bf16.

    y = (A_q · s_a) @ (W_q · s_w)^T + b,   A_q = fp8(A / s_a),  s_a = amax(|A|, row) / 448

The activation quantisation (:func:`quantize_rows`) is a plain torch function, so inside a block compiled
with ``torch.compile`` (``accel/compile.py``) inductor fuses its amax, divide, clamp and cast into the
kernels of the op that produced ``A`` (norm, modulation, GELU); eagerly it costs a few extra passes over
``A`` per GEMM, which eats most of the FP8 gain (issue 12) — use FP8 with compile.

Where ``_scaled_mm`` cannot run — CPU, GPUs below sm89, shapes whose K or N is not a multiple of 16 —
:class:`FP8Linear` falls back: on CPU it *emulates* the FP8 GEMM (both operands quantised exactly as on
the GPU, then dequantised and multiplied in fp32), so CPU results show the real quantisation error; on
CUDA it multiplies the unquantised activation by the dequantised weight in the compute dtype (memory
saving only).

``weight`` is an *empty* tensor in the compute dtype: the models cast their inputs with
``x.to(layer.weight.dtype)``, and that must stay bf16 (or fp32) rather than become fp8. The FP8 data is
``qweight`` (float8_e4m3fn [N, K]) and ``weight_scale`` (fp32 [N]); in a state dict they appear as
``<name>.weight`` (fp8) and ``<name>.weight_scale``, the layout of our FP8 files (``quant/fp8_state.py``).
Code that uses ``layer.weight`` as a matrix fails loudly on the empty tensor (e.g. LoRA merging: merge
before quantising).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FP8_DTYPE = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8_DTYPE).max)  # 448
FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
AMAX_FLOOR = 1e-12  # all-zero rows get a tiny scale instead of a division by zero

# Whether this process may call torch._scaled_mm on CUDA (set by enable_fp8_gemm; every visible GPU sm89+).
_scaled_mm_enabled = False


def fp8_gemm_available() -> bool:
    """True when every visible CUDA device has FP8 tensor cores (compute capability >= 8.9)."""
    if not torch.cuda.is_available() or not hasattr(torch, "_scaled_mm"):
        return False
    caps = [torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())]
    return bool(caps) and all(c >= (8, 9) for c in caps)


def enable_fp8_gemm(enabled: bool | None = None) -> bool:
    """Allow (default: when available) or forbid the ``_scaled_mm`` path; returns the new setting.

    Forbidding it makes CUDA use the emulated GEMM, which is how tests compare the two paths.
    """
    global _scaled_mm_enabled
    _scaled_mm_enabled = fp8_gemm_available() if enabled is None else bool(enabled)
    return _scaled_mm_enabled


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [M, K] -> (fp8 [M, K], fp32 scale [M, 1]) with ``x ≈ q * scale``; one scale per row (token)."""
    xf = x.float()
    scale = xf.abs().amax(dim=-1, keepdim=True).clamp(min=AMAX_FLOOR) / FP8_MAX
    q = (xf / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8_DTYPE)
    return q, scale


def quantize_weight(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """w [N, K] -> (fp8 [N, K], fp32 scale [N]): per-output-channel absmax scaling."""
    q, scale = quantize_rows(w.detach())
    return q, scale.squeeze(1)


def dequantize_weight(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """fp8 [N, K] and scale [N] (or a scalar) -> [N, K] in ``dtype`` (computed in fp32)."""
    s = scale.float().reshape(-1, 1) if scale.numel() > 1 else scale.float().reshape(())
    return (q.float() * s).to(dtype)


def fp8_linear(
    x: torch.Tensor,
    qweight: torch.Tensor,
    weight_scale: torch.Tensor,
    bias: torch.Tensor | None,
) -> torch.Tensor:
    """``x @ W^T + b`` for x [..., K] with the FP8 weight; output in ``x.dtype``."""
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    n, k = qweight.shape
    if x.is_cuda and not (_scaled_mm_enabled and n % 16 == 0 and k % 16 == 0):
        # no FP8 GEMM for this GPU or shape: weight-only dequantisation
        out = F.linear(x2, dequantize_weight(qweight, weight_scale, x.dtype), bias)
    else:
        out = fp8_gemm_rows(*quantize_rows(x2), qweight, weight_scale, bias, x.dtype)
    return out.reshape(*shape[:-1], n)


def fp8_gemm_rows(
    xq: torch.Tensor,
    xs: torch.Tensor,
    qweight: torch.Tensor,
    weight_scale: torch.Tensor,
    bias: torch.Tensor | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    """``(xq · xs) @ (W_q · s_w)^T + b`` for rows already quantised (:func:`quantize_rows`), out in ``dtype``:
    ``_scaled_mm`` on CUDA (the caller checks that it may run), the same roundings emulated on CPU."""
    if xq.is_cuda:
        b = None if bias is None else bias.to(torch.bfloat16)
        out = torch._scaled_mm(
            xq, qweight.t(), scale_a=xs, scale_b=weight_scale.view(1, -1), bias=b, out_dtype=torch.bfloat16
        )
        return out.to(dtype)
    # CPU: emulate the GPU's FP8 GEMM (both operands quantised), accumulate in fp32
    out = (xq.float() * xs) @ dequantize_weight(qweight, weight_scale, torch.float32).t()
    if bias is not None:
        out = out + bias.float()
    return out.to(dtype)


class FP8Linear(nn.Module):
    """Drop-in for an inference ``nn.Linear`` (no training: the FP8 tensors have no gradient)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        dtype: torch.dtype = torch.bfloat16,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(0, dtype=dtype, device=device), requires_grad=False)
        self.qweight = nn.Parameter(
            torch.zeros(out_features, in_features, dtype=FP8_DTYPE, device=device), requires_grad=False
        )
        self.weight_scale = nn.Parameter(
            torch.ones(out_features, dtype=torch.float32, device=device), requires_grad=False
        )
        self.bias: nn.Parameter | None
        if bias:
            self.bias = nn.Parameter(
                torch.zeros(out_features, dtype=dtype, device=device), requires_grad=False
            )
        else:
            self.register_parameter("bias", None)

    @classmethod
    @torch.no_grad()
    def from_linear(cls, linear: nn.Linear) -> FP8Linear:
        """Quantise ``linear`` (any device, meta included) into a new layer on the same device."""
        w = linear.weight
        layer = cls(
            linear.in_features, linear.out_features, linear.bias is not None, dtype=w.dtype, device="meta"
        )
        if not w.is_meta:
            q, s = quantize_weight(w)
            layer.weight = nn.Parameter(torch.empty(0, dtype=w.dtype, device=w.device), requires_grad=False)
            layer.qweight = nn.Parameter(q, requires_grad=False)
            layer.weight_scale = nn.Parameter(s, requires_grad=False)
            if linear.bias is not None:
                layer.bias = nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        return layer

    @property
    def compute_dtype(self) -> torch.dtype:
        return self.weight.dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fp8_linear(x, self.qweight, self.weight_scale, self.bias)

    def dequantized_weight(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The weight this layer multiplies by, [N, K] in ``dtype`` (default: the compute dtype)."""
        return dequantize_weight(self.qweight, self.weight_scale, dtype or self.compute_dtype)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, compute_dtype={self.compute_dtype}, weights=float8_e4m3fn"
        )

    # ------------------------------------------------------------------ dtype-safe moves
    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001 - nn.Module's signature
        """``.to(dtype)``, ``.half()`` etc. must not cast the FP8 weights or their fp32 scales: those are
        moved through same-size integer views (moves happen, casts do not); bias and ``weight`` follow."""
        keep = {name: self._parameters.pop(name) for name in ("qweight", "weight_scale")}
        try:
            super()._apply(fn, recurse)
        finally:
            for name, p in keep.items():
                view = torch.uint8 if p.dtype in FP8_DTYPES else torch.int32
                with torch.no_grad():
                    p.data = fn(p.data.view(view)).view(p.dtype)
                self._parameters[name] = p
        return self

    # ------------------------------------------------------------------ state dict: weight = the FP8 data
    def _save_to_state_dict(self, destination, prefix, keep_vars):  # noqa: ANN001
        def get(t: torch.Tensor) -> torch.Tensor:
            return t if keep_vars else t.detach()

        destination[prefix + "weight"] = get(self.qweight)
        destination[prefix + "weight_scale"] = get(self.weight_scale)
        if self.bias is not None:
            destination[prefix + "bias"] = get(self.bias)

    def _load_from_state_dict(  # noqa: ANN001, PLR0913
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        assign = bool(local_metadata.get("assign_to_params_buffers", False))
        wanted = {"weight": ("qweight", (self.out_features, self.in_features))}
        wanted["weight_scale"] = ("weight_scale", (self.out_features,))
        if self.bias is not None:
            wanted["bias"] = ("bias", (self.out_features,))
        for name, (attr, shape) in wanted.items():
            key = prefix + name
            if key not in state_dict:
                missing_keys.append(key)
                continue
            value = state_dict[key]
            if tuple(value.shape) != shape:
                error_msgs.append(f"{key}: shape {tuple(value.shape)}, expected {shape}")
                continue
            if name == "weight" and value.dtype != FP8_DTYPE:
                error_msgs.append(f"{key}: dtype {value.dtype}, expected float8_e4m3fn (fit the state first)")
                continue
            if name == "weight_scale":
                value = value.float()
            current = getattr(self, attr)
            if assign or current.is_meta:
                setattr(self, attr, nn.Parameter(value, requires_grad=False))
            else:
                with torch.no_grad():
                    current.copy_(value)
        if assign and self.weight.is_meta:
            device = self.qweight.device
            self.weight = nn.Parameter(
                torch.empty(0, dtype=self.weight.dtype, device=device), requires_grad=False
            )
        if strict:
            for key in state_dict:
                rest = key[len(prefix) :] if key.startswith(prefix) else None
                if rest is not None and "." not in rest and rest not in wanted:
                    unexpected_keys.append(key)
