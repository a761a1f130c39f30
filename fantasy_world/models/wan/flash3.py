"""FlashAttention-3 on Hopper GPUs: the optional kernel behind :mod:`.attention`, in bf16 and in FP8 mode.

Why: on an H200 PyTorch's fastest SDPA kernel (cuDNN) runs Wan's self-attention at 590–630 TFLOP/s, and
attention is most of a forward at 480p (issue 12). FA3 is written for Hopper's asynchronous tensor cores
and also multiplies e4m3 FP8 inputs. It is not part of PyTorch; either of these provides it:

* an upstream FlashAttention-3 build (module ``flash_attn_interface``, flash-attention's ``hopper/``);
* the forward-only wheel ``fa3-fwd`` (module ``fa3_fwd_interface``; ``pip install fa3-fwd``).

Without one (or off sm90, or on a CPU) nothing changes: attention runs through PyTorch's SDPA. FA3 here
is forward only, so anything that needs gradients (training) also stays on SDPA.

FP8 attention (opt-in ``fp8_attention``, ``quant/selection.py``): q, k and v are cast to e4m3 with one
scale per (batch, head), the layout of FA3's ``*_descale`` arguments, and FA3 rounds the softmax
probabilities to e4m3 before P·V. The keys are *smoothed* first (:func:`smooth_keys`): their mean over the
tokens is subtracted, which changes every score of a query row by the same amount and so leaves the softmax
exactly as it was, but removes the component all keys share. e4m3 keeps ~2^-4 of each value's magnitude,
so the scores' rounding error scales with |q|·|k|; with a shared key direction (peaked attention) smoothing
cut the kernel's error against fp32 from 0.235 to 0.093 at the 14B self-attention shape on an H200, for 3 %
more time (``bench/step_parts.py --only fusion``). Without a shared direction (random weights, the tiny
model) it changes nothing measurable. :func:`emulated_fp8_attention` repeats those roundings in fp32, so CPU
runs (tests, the tiny model's quality numbers) see the FP8 error; the bench section ``attn``
(``bench/harness/attention_table.py``) compares it with the kernel on the GPU: 1.3–2.2e-2 apart where the
kernel is 0.2 from fp32.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable

import torch

from fantasy_world.models.wan import fp8_heads
from fantasy_world.quant.fp8_linear import FP8_DTYPE

log = logging.getLogger(__name__)

MODULES = ("flash_attn_interface", "fa3_fwd_interface")
P_SCALE = 256.0  # the probabilities exp(s - rowmax) <= 1 are scaled by 2**8 before the e4m3 rounding

# Resolved once by load(): the kernel (the module's ``_flash_attn_forward``), where it came from, and the
# CUDA device indices it may run on (sm90). Plain globals, so compiled code reads them as constants.
_fwd: list[Callable[..., tuple] | None] = [None]
_source: list[str] = [""]
_devices: list[tuple[int, ...]] = [()]


def load() -> str:
    """Find an FA3 build for the visible sm90 GPUs; returns its module name or ''. ``FW_FA3=0`` skips it."""
    _fwd[0], _source[0], _devices[0] = None, "", ()
    if os.environ.get("FW_FA3", "1").strip() == "0" or not torch.cuda.is_available():
        return ""
    devices = tuple(
        i for i in range(torch.cuda.device_count()) if torch.cuda.get_device_capability(i) == (9, 0)
    )
    if not devices:
        return ""
    for name in MODULES:
        try:
            fwd = importlib.import_module(name)._flash_attn_forward
        except Exception as exc:  # noqa: BLE001 - a missing or broken build just means SDPA
            log.debug("FlashAttention-3 from %s: not usable (%s)", name, exc)
            continue
        _fwd[0], _source[0], _devices[0] = fwd, name, devices
        log.info("attention: FlashAttention-3 from %s on GPUs %s", name, list(devices))
        return name
    return ""


def source() -> str:
    """The module FA3 was loaded from, or '' when attention runs through SDPA only."""
    return _source[0]


def can_run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """Whether FA3 takes these [B, L, H, D] inputs: bf16 on an sm90 GPU, D a multiple of 8 up to 256,
    no gradients needed."""
    return (
        _fwd[0] is not None
        and q.is_cuda
        and q.device.index in _devices[0]
        and q.dtype == torch.bfloat16
        and k.dtype == torch.bfloat16
        and v.dtype == torch.bfloat16
        and q.shape[-1] % 8 == 0
        and q.shape[-1] <= 256
        and not (torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad))
    )


def _last_dim_contiguous(x: torch.Tensor) -> torch.Tensor:
    return x if x.stride(-1) == 1 else x.contiguous()


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Exact attention through FA3. q [B, Lq, H, D], k/v [B, Lk, H, D] -> [B, Lq, H, D] (bf16)."""
    fwd = _fwd[0]
    assert fwd is not None, "flash3.attention called without a loaded FlashAttention-3"
    q, k, v = (_last_dim_contiguous(t) for t in (q, k, v))
    return fwd(q, k, v, softmax_scale=q.shape[-1] ** -0.5, causal=False)[0]


def quantize_heads(x: torch.Tensor, shift: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, L, H, D] (minus ``shift`` [B, 1, H, D]) -> (e4m3 values, fp32 scales [B, H]) with amax over (L, D)
    mapped to 448; two Triton passes on GPUs (``fp8_heads.py``), the same torch expressions elsewhere."""
    return fp8_heads.quantize_heads(x, shift)


def key_shift(k: torch.Tensor) -> torch.Tensor:
    """The keys' mean over the tokens, [B, 1, H, D] in fp32: what :func:`smooth_keys` subtracts."""
    return k.float().mean(dim=1, keepdim=True)


def smooth_keys(k: torch.Tensor) -> torch.Tensor:
    """k [B, L, H, D] minus its mean over the tokens (fp32): the same softmax, a smaller FP8 rounding error."""
    return k.float() - key_shift(k)


def _quantized_inputs(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> tuple[tuple[torch.Tensor, ...], ...]:
    """(values, scales) of q, the smoothed k and v, as FA3's FP8 kernel takes them."""
    return quantize_heads(q), quantize_heads(k, key_shift(k)), quantize_heads(v)


def fp8_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """FA3's FP8 kernel on per-(batch, head) quantised inputs, keys smoothed; bf16 [B, Lq, H, D]."""
    fwd = _fwd[0]
    assert fwd is not None, "flash3.fp8_attention called without a loaded FlashAttention-3"
    (q8, qs), (k8, ks), (v8, vs) = _quantized_inputs(q, k, v)
    out = fwd(
        q8,
        k8,
        v8,
        softmax_scale=q.shape[-1] ** -0.5,
        causal=False,
        q_descale=qs,
        k_descale=ks,
        v_descale=vs,
    )[0]
    return out.to(q.dtype)


def emulated_fp8_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block: int = 1024, rows: int | None = None
) -> torch.Tensor:
    """The roundings of :func:`fp8_attention` in fp32 on any device (query blocks bound the memory).

    q, smoothed k and v are quantised exactly as for the kernel and dequantised; the probabilities exp(s − rowmax)
    are rounded to e4m3 after scaling by 256, and the row sums use the unrounded probabilities.
    ``rows`` computes only the first query rows (scales still come from the whole of q), for checks.
    """
    (q8, qs), (k8, ks), (v8, vs) = _quantized_inputs(q, k, v)
    qd = q8.float() * qs[:, None, :, None]
    kd = k8.float() * ks[:, None, :, None]
    vd = v8.float() * vs[:, None, :, None]
    scale = q.shape[-1] ** -0.5
    outs = []
    for start in range(0, q.shape[1] if rows is None else min(rows, q.shape[1]), block):
        stop = start + block if rows is None else min(start + block, rows)
        s = torch.einsum("blhd,bmhd->bhlm", qd[:, start:stop], kd) * scale
        p = torch.exp(s - s.amax(dim=-1, keepdim=True))
        p8 = (p * P_SCALE).to(FP8_DTYPE).float() / P_SCALE
        o = torch.einsum("bhlm,bmhd->blhd", p8, vd) / p.sum(dim=-1).transpose(1, 2)[..., None]
        outs.append(o)
    return torch.cat(outs, dim=1).to(q.dtype)
