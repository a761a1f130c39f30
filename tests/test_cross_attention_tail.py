"""Cross-attention that reads each run of repeated text keys once (``attention.cross_attention``).

Wan pads the text features with zeros to 512 tokens, so all padding tokens share one key and value. Where
FA3 runs, the attention reads the distinct rows plus one copy (``seqused_k``) and adds the other copies from
the log-sum-exp. These tests stand in a torch version of FA3's forward (same arguments, same outputs) so
the merging maths runs on a CPU, and check it against attention over every key."""

from __future__ import annotations

import math

import pytest
import torch

from fantasy_world.models.wan import attention as attn
from fantasy_world.models.wan import flash3
from fantasy_world.models.wan.config import WanDiTConfig
from fantasy_world.models.wan.dit import WanDiT


def _fake_fa3(calls: list[torch.Tensor | None]):
    """FA3's ``_flash_attn_forward`` in torch: (out, lse) over the first ``seqused_k[b]`` keys."""

    def fwd(q, k, v, softmax_scale, causal=False, seqused_k=None, **_):
        assert not causal
        calls.append(None if seqused_k is None else seqused_k.clone())
        outs, lses = [], []
        for b in range(q.shape[0]):
            n = k.shape[1] if seqused_k is None else int(seqused_k[b])
            s = torch.einsum("lhd,mhd->hlm", q[b].float(), k[b, :n].float()) * softmax_scale
            lses.append(torch.logsumexp(s, dim=-1))
            outs.append(torch.einsum("hlm,mhd->lhd", s.softmax(dim=-1), v[b, :n].float()))
        return torch.stack(outs).to(q.dtype), torch.stack(lses)

    return fwd


@pytest.fixture
def fake_fa3(monkeypatch):
    calls: list[torch.Tensor | None] = []
    monkeypatch.setattr(flash3, "_fwd", [_fake_fa3(calls)])
    monkeypatch.setattr(attn, "_wants_fa3", lambda q, k, v: True)
    monkeypatch.setattr(attn, "_merge_tail", [True])
    return calls


def _padded(batch: int, real: list[int], length: int = 12, dim: int = 8, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    rows = torch.randn(batch, length, dim)
    pad = torch.randn(dim)
    for b, n in enumerate(real):
        rows[b, n:] = pad
    return rows


def test_repeated_tail_counts_the_copies_of_the_last_row(monkeypatch) -> None:
    monkeypatch.setattr(attn, "_merge_tail", [True])
    rows = _padded(4, [5, 11, 12, 0])
    rows[2, -1] = rows[2, -2] + 1  # no repeated tail: the last row is unique
    tail = attn.repeated_tail(rows)
    assert tail.used.dtype == torch.int32 and tail.used.tolist() == [6, 12, 12, 1]
    copies = tail.log_copies.exp().round()
    assert copies.tolist() == [6.0, 0.0, 0.0, 11.0]  # 12 rows = used + further copies
    rows[0, 7, 0] = float("nan")  # a NaN row is never taken for a copy
    assert attn.repeated_tail(rows).used[0] == 9
    monkeypatch.setattr(attn, "_merge_tail", [False])
    assert attn.repeated_tail(rows) is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_merged_copies_give_the_attention_over_every_key(fake_fa3, dtype: torch.dtype) -> None:
    torch.manual_seed(1)
    heads, head_dim = 3, 16
    rows = _padded(3, [4, 12, 0], length=12, dim=heads * head_dim)
    k = (rows * 1.5).view(3, 12, heads, head_dim).to(dtype)
    v = torch.randn(3, 12, heads, head_dim)
    for b, n in enumerate([4, 12, 0]):
        v[b, n:] = v[b, -1]  # values repeat where the keys do
    v = v.to(dtype)
    q = (torch.randn(3, 7, heads, head_dim) * 2).to(dtype)
    tail = attn.repeated_tail(rows)
    got = attn.cross_attention(q, k, v, tail)
    want = _reference(q, k, v)
    assert fake_fa3[-1].tolist() == [5, 12, 1]  # FA3 read 5, 12 and 1 keys instead of 12 each
    tol = 2e-6 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(got.float(), want, rtol=tol, atol=tol)
    assert got.dtype == dtype


def _reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    s = torch.einsum("blhd,bmhd->bhlm", q.float(), k.float()) * q.shape[-1] ** -0.5
    return torch.einsum("bhlm,bmhd->blhd", s.softmax(dim=-1), v.float())


def test_large_scores_stay_finite(fake_fa3) -> None:
    """Scores of a few hundred (far past exp's float32 range) must not overflow the merge."""
    q = torch.full((1, 2, 1, 8), 40.0)
    k = torch.full((1, 6, 1, 8), 30.0)
    k[0, 0] = -30.0
    v = torch.arange(6.0).view(1, 6, 1, 1).expand(1, 6, 1, 8).contiguous()
    v[0, 2:] = 5.0
    k[0, 2:] = 30.0
    tail = attn.RepeatedTail(torch.tensor([3], dtype=torch.int32), torch.tensor([math.log(3.0)]))
    got = attn.cross_attention(q, k, v, tail)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, _reference(q, k, v), rtol=1e-5, atol=1e-5)


def test_dit_forward_is_the_same_with_and_without_merging(fake_fa3) -> None:
    cfg = WanDiTConfig(
        dim=48,
        ffn_dim=96,
        num_heads=4,
        num_layers=2,
        freq_dim=32,
        text_dim=24,
        text_len=16,
        image_input=True,
        clip_tokens=5,
        clip_dim=20,
        in_dim=8,
        out_dim=4,
    )
    torch.manual_seed(0)
    model = WanDiT(cfg).eval()
    for p in model.parameters():
        p.data.normal_(0, 0.2)
    context = torch.randn(1, 6, 24)  # a 6-token prompt: the DiT pads it to 16 with zeros
    args = (torch.randn(1, 4, 2, 4, 4), torch.tensor([500.0]), context)
    extra = {"clip_fea": torch.randn(1, 5, 20), "y": torch.randn(1, 4, 2, 4, 4)}
    with torch.no_grad():
        merged = model(*args, **extra)
        # per block: self-attention and image attention read every key, the text 6 tokens + 1 padding row
        assert [c.tolist() for c in fake_fa3 if c is not None] == [[7]] * 2
        assert sum(c is None for c in fake_fa3) == 4
        attn.set_tail_merging(False)
        try:
            fake_fa3.clear()
            plain = model(*args, **extra)
        finally:
            attn.set_tail_merging(True)
    assert all(c is None for c in fake_fa3)  # switched off: every key read
    torch.testing.assert_close(merged, plain, rtol=1e-5, atol=1e-5)
    with torch.no_grad(), model.step_invariants():  # keys/values reused across steps keep their tail
        fake_fa3.clear()
        model(*args, **extra)
        model(*args, **extra)
        assert [c.tolist() for c in fake_fa3 if c is not None] == [[7]] * 4
