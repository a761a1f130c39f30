"""Text encoders: umT5 parity with transformers, key coverage, tokenizer semantics, bundled MiniLM."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import UMT5Config as HFUMT5Config
from transformers import UMT5EncoderModel

from fantasy_world.errors import CheckpointError, InputError
from fantasy_world.models.wan.minilm import MINILM_DIM, MINILM_MAX_LENGTH, load_minilm
from fantasy_world.models.wan.text_encoder import load_text_encoder, zero_past_length
from fantasy_world.models.wan.umt5 import (
    UMT5_PRESETS,
    UMT5_TOKENIZER_DIR,
    UMT5_WEIGHT_FILE,
    UMT5Config,
    UMT5Encoder,
    load_umt5,
    relative_position_bucket,
)


def hf_config(cfg: UMT5Config) -> HFUMT5Config:
    return HFUMT5Config(
        vocab_size=cfg.vocab,
        d_model=cfg.dim,
        d_kv=cfg.dim_attn // cfg.num_heads,
        d_ff=cfg.dim_ffn,
        num_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        relative_attention_num_buckets=cfg.num_buckets,
        relative_attention_max_distance=cfg.max_distance,
        feed_forward_proj="gated-gelu",
        dropout_rate=0.0,
        layer_norm_epsilon=cfg.eps,
    )


def hf_umt5_to_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Test-only converter: transformers UMT5EncoderModel names -> Wan's T5Encoder names."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in ("shared.weight", "encoder.embed_tokens.weight"):
            out["token_embedding.weight"] = value
            continue
        if key == "encoder.final_layer_norm.weight":
            out["norm.weight"] = value
            continue
        parts = key.split(".")
        assert parts[:2] == ["encoder", "block"], key
        i, rest = parts[2], ".".join(parts[3:])
        table = {
            "layer.0.layer_norm.weight": "norm1.weight",
            "layer.0.SelfAttention.q.weight": "attn.q.weight",
            "layer.0.SelfAttention.k.weight": "attn.k.weight",
            "layer.0.SelfAttention.v.weight": "attn.v.weight",
            "layer.0.SelfAttention.o.weight": "attn.o.weight",
            "layer.0.SelfAttention.relative_attention_bias.weight": "pos_embedding.embedding.weight",
            "layer.1.layer_norm.weight": "norm2.weight",
            "layer.1.DenseReluDense.wi_0.weight": "ffn.gate.0.weight",
            "layer.1.DenseReluDense.wi_1.weight": "ffn.fc1.weight",
            "layer.1.DenseReluDense.wo.weight": "ffn.fc2.weight",
        }
        out[f"blocks.{i}.{table[rest]}"] = value
    return out


def random_hf_umt5(cfg: UMT5Config, seed: int) -> UMT5EncoderModel:
    torch.manual_seed(seed)
    model = UMT5EncoderModel(hf_config(cfg)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif "relative_attention_bias" in name:
                p.copy_(torch.randn_like(p))
            elif "embed" in name or "shared" in name:
                p.copy_(torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) * p.shape[-1] ** -0.5)
    return model


@pytest.mark.parametrize("preset", ["umt5-test", "umt5-test-wide-attn"])
def test_umt5_matches_transformers(preset: str) -> None:
    cfg = UMT5_PRESETS[preset]
    hf = random_hf_umt5(cfg, seed=0)
    ours = UMT5Encoder(cfg).eval()
    ours.load_state_dict(hf_umt5_to_official(hf.state_dict()), strict=True)

    gen = torch.Generator().manual_seed(1)
    length = cfg.text_len
    ids = torch.randint(3, cfg.vocab, (3, length), generator=gen)
    lens = torch.tensor([length, 5, 1])
    mask = (torch.arange(length)[None] < lens[:, None]).long()
    ids = ids.masked_fill(mask == 0, 0)

    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask).last_hidden_state
        got = ours(ids, mask)
    for b, n in enumerate(lens.tolist()):
        err = (got[b, :n] - ref[b, :n]).norm() / ref[b, :n].norm()
        assert err < 1e-4, (b, float(err))
    assert ref.abs().mean() > 0.1  # the comparison is not between near-zero tensors


def test_umt5_encode_tokens_zeroes_after_length() -> None:
    cfg = UMT5_PRESETS["umt5-test"]
    torch.manual_seed(0)
    model = UMT5Encoder(cfg).eval()
    ids = torch.randint(3, cfg.vocab, (2, cfg.text_len))
    mask = torch.zeros_like(ids)
    mask[0, :4] = 1
    mask[1, :] = 1
    with torch.no_grad():
        out = zero_past_length(model(ids, mask), mask)
    assert torch.all(out[0, 4:] == 0)
    assert torch.all(out[0, :4].abs().sum(-1) > 0)
    assert torch.all(out[1].abs().sum(-1) > 0)


def test_relative_buckets_match_transformers() -> None:
    hf = UMT5EncoderModel(hf_config(UMT5_PRESETS["umt5-test"]))
    attn = hf.encoder.block[0].layer[0].SelfAttention
    length = 300  # reaches past max_distance so the clamped log buckets are exercised
    rel = torch.arange(length)[None, :] - torch.arange(length)[:, None]
    want = attn._relative_position_bucket(rel)
    got = relative_position_bucket(length, 32, 128, torch.device("cpu"))
    assert torch.equal(got, want)
    assert int(got.max()) == 31 and int(got.min()) == 0


def test_umt5_xxl_key_coverage_on_meta() -> None:
    cfg = UMT5_PRESETS["umt5-xxl"]
    with torch.device("meta"):
        hf = UMT5EncoderModel(hf_config(cfg))
        ours = UMT5Encoder(cfg)
    want = {k: tuple(v.shape) for k, v in hf_umt5_to_official(hf.state_dict()).items()}
    got = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert set(got) == set(want)
    assert got == want
    assert len(got) == 1 + 24 * 10 + 1
    assert got["token_embedding.weight"] == (256384, 4096)
    assert got["blocks.23.pos_embedding.embedding.weight"] == (32, 64)
    assert got["blocks.0.ffn.gate.0.weight"] == (10240, 4096)
    assert sum(v.numel() for v in ours.state_dict().values()) == pytest.approx(5.68e9, rel=0.01)


# ---------------------------------------------------------------- tokenizer path (offline, tiny tokenizer)

WORDS = ["a", "red", "ball", "in", "the", "courtyard", "blue", "sky", "over", "hills"]


def write_tokenizer(folder: Path) -> None:
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    folder.mkdir(parents=True)
    tok.save(str(folder / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "pad_token": "<pad>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "model_max_length": 512,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def wan_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wan")
    write_tokenizer(root / UMT5_TOKENIZER_DIR)
    torch.manual_seed(3)
    model = UMT5Encoder(UMT5_PRESETS["umt5-test"])
    torch.save(model.state_dict(), root / UMT5_WEIGHT_FILE)
    return root


@pytest.fixture(scope="module")
def tiny_umt5(wan_folder: Path) -> UMT5Encoder:
    return load_umt5(wan_folder, cfg=UMT5_PRESETS["umt5-test"], dtype=torch.float32)


def test_umt5_loaded_weights_equal_file(wan_folder: Path, tiny_umt5: UMT5Encoder) -> None:
    saved = torch.load(wan_folder / UMT5_WEIGHT_FILE, weights_only=True)
    for key, value in tiny_umt5.state_dict().items():
        assert torch.equal(value, saved[key]), key
    assert not any(p.requires_grad for p in tiny_umt5.parameters())
    assert not tiny_umt5.training


def test_umt5_encode_pads_truncates_and_zeroes(
    tiny_umt5: UMT5Encoder, caplog: pytest.LogCaptureFixture
) -> None:
    long_prompt = " ".join(WORDS * 3)  # 30 words + </s>: longer than text_len 16
    with caplog.at_level(logging.WARNING):
        out = tiny_umt5.encode(["a red ball", long_prompt, "blue sky zebra"])
    assert out.shape == (3, 16, 64) and out.dtype == torch.float32
    assert "truncated" in caplog.text and "31 tokens" in caplog.text

    lengths = [4, 16, 4]  # words + </s>; unknown words still count
    for b, n in enumerate(lengths):
        assert torch.all(out[b, n:] == 0)
        assert torch.all(out[b, :n].abs().sum(-1) > 0)

    # masked padding must not change the valid tokens: same result as the unpadded sequence alone
    ids = torch.tensor([[3, 4, 5, 1]])
    with torch.no_grad():
        alone = tiny_umt5(ids)
    torch.testing.assert_close(out[0, :4], alone[0], rtol=1e-5, atol=1e-5)


def test_umt5_whitespace_cleaning(tiny_umt5: UMT5Encoder) -> None:
    a = tiny_umt5.encode(["  a   red\n\tball  "])
    b = tiny_umt5.encode(["a red ball"])
    c = tiny_umt5.encode(["a blue ball"])
    assert torch.equal(a, b)
    assert not torch.allclose(b, c)


def test_prompt_validation(tiny_umt5: UMT5Encoder) -> None:
    with pytest.raises(InputError, match="empty list"):
        tiny_umt5.encode([])
    with pytest.raises(InputError, match=r"prompts\[1\]"):
        tiny_umt5.encode(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(InputError, match="list of strings"):
        tiny_umt5.encode("a red ball")  # type: ignore[arg-type]


def test_umt5_missing_files(wan_folder: Path, tmp_path: Path) -> None:
    weights = wan_folder / UMT5_WEIGHT_FILE
    with pytest.raises(CheckpointError, match="nowhere"):
        load_umt5(weights, tokenizer_dir=tmp_path / "nowhere", cfg=UMT5_PRESETS["umt5-test"])
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / UMT5_WEIGHT_FILE).write_bytes(weights.read_bytes())
    with pytest.raises(CheckpointError, match="umt5-xxl"):  # no google/umt5-xxl next to the file
        load_umt5(lone / UMT5_WEIGHT_FILE, cfg=UMT5_PRESETS["umt5-test"])
    with pytest.raises(CheckpointError, match=UMT5_WEIGHT_FILE):
        load_umt5(tmp_path, cfg=UMT5_PRESETS["umt5-test"])
    with pytest.raises(CheckpointError, match="no path"):
        load_text_encoder("umt5-xxl", None)
    with pytest.raises(InputError, match="clip"):
        load_text_encoder("clip", None)


def test_umt5_wrong_size_weights_named(wan_folder: Path) -> None:
    with pytest.raises(CheckpointError, match="token_embedding.weight"):
        load_umt5(wan_folder, cfg=UMT5_PRESETS["umt5-test-wide-attn"], dtype=torch.float32)


# ---------------------------------------------------------------- bundled MiniLM (real weights)


@pytest.fixture(scope="module")
def minilm():
    return load_text_encoder("minilm", None)


def test_minilm_shape_padding_and_cache(minilm) -> None:
    assert minilm is load_minilm()
    assert (minilm.dim, minilm.max_length) == (MINILM_DIM, MINILM_MAX_LENGTH)
    out = minilm.encode(["a red ball", "the sky over the hills at dusk"])
    assert out.shape == (2, 64, 384) and out.dtype == torch.float32
    lengths = [5, 9]  # [CLS] + words + [SEP]
    for b, n in enumerate(lengths):
        assert torch.all(out[b, n:] == 0)
        assert torch.all(out[b, :n].abs().sum(-1) > 1.0)
    assert torch.isfinite(out).all()


def test_minilm_semantics(minilm) -> None:
    out = minilm.encode(
        ["a red ball in a courtyard", "a crimson sphere in a yard", "quarterly tax filing deadline"]
    )
    valid = (out.abs().sum(-1) > 0).float().unsqueeze(-1)
    pooled = (out * valid).sum(1) / valid.sum(1)
    sim = torch.nn.functional.cosine_similarity(pooled[:1], pooled[1:], dim=-1)
    assert sim[0] > sim[1] + 0.2, sim.tolist()


def test_minilm_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_minilm(tmp_path / "absent")
    with pytest.raises(CheckpointError, match="config.json"):
        load_minilm(tmp_path)


def test_umt5_bfloat16_close_to_float32(wan_folder: Path, tiny_umt5: UMT5Encoder) -> None:
    """The shipped weights are bf16: the low-precision path must run and stay close to float32."""
    bf16 = load_umt5(wan_folder, cfg=UMT5_PRESETS["umt5-test"], dtype=torch.bfloat16)
    prompts = ["a red ball in the courtyard", "blue sky"]
    low = bf16.encode(prompts)
    ref = tiny_umt5.encode(prompts)
    assert low.dtype == torch.bfloat16
    assert torch.equal(low == 0, ref == 0)
    err = (low.float() - ref).norm() / ref.norm()
    assert err < 0.03, float(err)
