"""The DiT's token stream is stored row-major ([B, L, dim], stride 1 along dim) from the patch embedding on:
in the patch embedding's own channel-major layout every norm over dim read strided memory (issue 12). The patch
embedding runs as one GEMM over flattened patches, which writes that order directly: the values are the
Conv3d's up to float32 summation order."""

from __future__ import annotations

import pytest
import torch

from fantasy_world.models.wan import dit as dit_module
from fantasy_world.models.wan.config import WanDiTConfig
from fantasy_world.models.wan.dit import WanDiT


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_tokens_are_row_major_and_the_output_is_unchanged(dtype: torch.dtype) -> None:
    cfg = WanDiTConfig(dim=48, ffn_dim=96, num_heads=4, num_layers=2, freq_dim=32, text_dim=24, text_len=8)
    torch.manual_seed(0)
    model = WanDiT(cfg).to(dtype).eval()
    for p in model.parameters():
        p.data.normal_(0, 0.2)
    args = (torch.randn(1, cfg.in_dim, 2, 4, 4), torch.tensor([500.0]), torch.randn(1, 8, 24))
    with torch.no_grad():
        state = model.embed(*args)
        assert state.tokens.dtype == torch.float32 and state.tokens.is_contiguous()
        out = model(*args)
        try:
            dit_module.set_row_major_tokens(False)  # the layout before: stride 1 along the tokens
            assert model.embed(*args).tokens.stride()[1] == 1
            before = model(*args)
        finally:
            dit_module.set_row_major_tokens(True)
    torch.testing.assert_close(out, before, rtol=1e-5, atol=1e-5)
    assert not torch.equal(out, torch.zeros_like(out))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_patch_tokens_are_the_conv3d_in_token_order(dtype: torch.dtype) -> None:
    torch.manual_seed(1)
    conv = torch.nn.Conv3d(20, 40, kernel_size=(1, 2, 2), stride=(1, 2, 2)).to(dtype)
    x = torch.randn(2, 20, 3, 6, 10).to(dtype)
    tokens, grid = dit_module._patch_tokens(conv, x)
    want = conv(x)
    assert grid == tuple(want.shape[2:]) == (3, 3, 5)
    assert tokens.dtype == torch.float32 and tokens.shape == (2, 45, 40) and tokens.is_contiguous()
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(tokens, want.flatten(2).transpose(1, 2).float(), rtol=tol, atol=tol)
