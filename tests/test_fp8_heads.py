"""FP8 attention's per-(batch, head) input quantisation op (``models/wan/fp8_heads.py``) on CPU: its maths,
the key shift, its fake (compile) form and when FA3's FP8 path routes through it. The Triton passes run
on GPUs only; ``bench/step_parts.py --only fp8attn`` checks them against this form there."""

from __future__ import annotations

import pytest
import torch

from fantasy_world.models.wan import flash3, fp8_heads
from fantasy_world.quant.fp8_linear import FP8_DTYPE, FP8_MAX


def _x(seed: int = 0, shape: tuple[int, ...] = (2, 9, 3, 16)) -> torch.Tensor:
    torch.manual_seed(seed)
    x = (torch.randn(*shape) * 2).bfloat16()
    x[-1, -1, -1, 0] = -30  # one outlier sets the scale of (last batch, last head) only
    return x


def test_op_scales_each_batch_and_head_and_shift_is_subtracted_first() -> None:
    x = _x()
    q, scale = fp8_heads.quantize_heads_op(x, None)
    assert q.dtype == FP8_DTYPE and q.shape == x.shape and scale.shape == (2, 3)
    torch.testing.assert_close(scale, x.float().abs().amax(dim=(1, 3)) / FP8_MAX, rtol=0, atol=0)
    assert scale[1, 2] > 3 * scale[1, 1]
    assert q.float().abs().amax(dim=(1, 3)).eq(FP8_MAX).all()
    shift = x.float().mean(dim=1, keepdim=True)
    qs, ss = fp8_heads.quantize_heads_op(x, shift)
    want_q, want_s = fp8_heads.reference(x.float() - shift)
    torch.testing.assert_close(ss, want_s, rtol=0, atol=0)
    assert torch.equal(qs.view(torch.uint8), want_q.view(torch.uint8))
    # dequantised, within e4m3's half step of the shifted values
    torch.testing.assert_close(
        qs.float() * ss[:, None, :, None], x.float() - shift, rtol=2**-4, atol=ss.max().item()
    )


def test_op_passes_opcheck_and_compiles_as_one_call() -> None:
    x = _x(1, (1, 5, 2, 8))
    shift = x.float().mean(dim=1, keepdim=True)
    for args in ((x, None), (x, shift)):
        torch.library.opcheck(torch.ops.fantasy_world.quantize_heads.default, args)
    compiled = torch.compile(lambda t, s: fp8_heads.quantize_heads_op(t, s)[1] * 2, fullgraph=True)
    torch.testing.assert_close(compiled(x, shift), 2 * fp8_heads.quantize_heads_op(x, shift)[1])


@pytest.mark.parametrize("case", ["cpu", "head-dim-12", "three-dims", "bad-shift", "switched-off"])
def test_kernels_only_for_inputs_they_take(monkeypatch, case: str) -> None:
    monkeypatch.setattr(fp8_heads, "_on_gpu", lambda x: case != "cpu")
    monkeypatch.setattr(fp8_heads, "_enabled", [case != "switched-off"])
    x = _x(2)
    shift = x.float().mean(dim=1, keepdim=True)
    assert fp8_heads.fusable(x, shift) == (case not in ("cpu", "switched-off"))
    if case == "head-dim-12":  # not a power of two (the bicross heads are 96 wide): padded tiles take it
        assert fp8_heads.fusable(x[..., :12].contiguous(), shift[..., :12])
        return
    if case == "three-dims":
        x = x.flatten(2)
    if case == "bad-shift":
        shift = shift[:, :, :2]
    assert not fp8_heads.fusable(x, shift)


def test_flash3_quantises_q_v_plain_and_k_shifted_by_its_mean(monkeypatch) -> None:
    q, v = _x(3), _x(5)
    k = (torch.randn(2, 9, 3, 16) * 2 + 8).bfloat16()  # the keys share a direction: the shift matters
    calls: list[bool] = []
    real = fp8_heads.quantize_heads_op
    monkeypatch.setattr(fp8_heads, "_on_gpu", lambda x: True)
    monkeypatch.setattr(
        fp8_heads, "quantize_heads_op", lambda x, s: calls.append(s is not None) or real(x, s)
    )
    (_, qs), (k8, ks), (_, vs) = flash3._quantized_inputs(q, k, v)
    assert calls == [False, True, False]
    want_k8, want_ks = fp8_heads.reference(flash3.smooth_keys(k))
    assert torch.equal(k8.view(torch.uint8), want_k8.view(torch.uint8))
    torch.testing.assert_close(ks, want_ks, rtol=0, atol=0)
    assert (ks < 0.6 * fp8_heads.reference(k)[1]).all()  # smoothing took the shared 8 out of the keys
