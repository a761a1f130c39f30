"""Attention backend selection and the compile-path RoPE (CPU)."""

from __future__ import annotations

import math

import pytest
import torch

from fantasy_world.errors import InputError
from fantasy_world.models.wan import attention as attn_mod
from fantasy_world.models.wan import rope as rope_mod
from fantasy_world.models.wan.attention import (
    ATTENTION_BACKENDS,
    attention,
    attention_backend,
    get_attention_backend,
    sdpa,
    set_attention_backend,
)
from fantasy_world.models.wan.rope import apply_rope, wan_rope_freqs


def _manual(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    w = torch.softmax(torch.einsum("blhd,bmhd->bhlm", q, k) / math.sqrt(q.shape[-1]), dim=-1)
    return torch.einsum("bhlm,bmhd->blhd", w, v)


def test_backend_names_and_errors() -> None:
    assert ATTENTION_BACKENDS[0] == "auto" and {"flash", "cudnn", "efficient", "math", "cudnn-first"} <= set(
        ATTENTION_BACKENDS
    )
    with pytest.raises(InputError, match="attention backend 'fa9'"):
        set_attention_backend("fa9")
    with pytest.raises(InputError):
        with attention_backend("nope"):
            pass
    assert get_attention_backend() == "auto"


def test_context_restores_on_error() -> None:
    set_attention_backend("flash")
    try:
        with pytest.raises(RuntimeError, match="boom"):
            with attention_backend("math"):
                assert get_attention_backend() == "math"
                raise RuntimeError("boom")
        assert get_attention_backend() == "flash"
    finally:
        set_attention_backend("auto")


@pytest.mark.parametrize("name", ATTENTION_BACKENDS)
def test_every_backend_computes_attention_on_cpu(name: str) -> None:
    """Forced kernels apply to CUDA tensors only; on CPU every selection gives the same maths."""
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 5, 3, 8), torch.randn(2, 7, 3, 8), torch.randn(2, 7, 3, 8)
    set_attention_backend(name)
    try:
        out = attention(q, k, v)
        out_bhld = sdpa(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)
    finally:
        set_attention_backend("auto")
    torch.testing.assert_close(out, _manual(q, k, v), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_bhld, out)


def test_math_region_covers_plain_sdpa_calls() -> None:
    """The context manager forces the kernel for SDPA calls made outside this module too."""
    q = torch.randn(1, 2, 4, 8)
    with attention_backend("math"):
        assert get_attention_backend() == "math"
        out = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    torch.testing.assert_close(out, torch.nn.functional.scaled_dot_product_attention(q, q, q))


def test_environment_variable_selects_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    monkeypatch.setenv("FW_ATTENTION_BACKEND", "CUDNN-first")
    try:
        importlib.reload(attn_mod)
        assert attn_mod.get_attention_backend() == "cudnn-first"
    finally:
        monkeypatch.delenv("FW_ATTENTION_BACKEND")
        importlib.reload(attn_mod)
    assert attn_mod.get_attention_backend() == "auto"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("table", [torch.complex64, torch.complex128])
def test_compile_path_rope_equals_eager(monkeypatch: pytest.MonkeyPatch, dtype, table) -> None:
    """The real-arithmetic RoPE used under torch.compile computes the same rotation as the complex one."""
    torch.manual_seed(1)
    x = torch.randn(2, 30, 3, 64).to(dtype)
    freqs = wan_rope_freqs(64, (3, 2, 5)).to(table)
    eager = apply_rope(x, freqs)
    monkeypatch.setattr(rope_mod.torch.compiler, "is_compiling", lambda: True)
    written_out = apply_rope(x, freqs)
    assert written_out.dtype == eager.dtype == dtype
    tol = 1e-6 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(written_out.float(), eager.float(), rtol=tol, atol=tol)
