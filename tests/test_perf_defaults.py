"""Fast-by-default switches (issue 12): compile notice and eager fallback, the block-swap rule, encoders
that leave the card once used, and the start-image cache. CPU only: compilation is simulated by setting
what ``nn.Module.compile`` sets, and the encoder tests' "card" is a distinct CPU copy of each tensor."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from fantasy_world import FantasyWorldPipeline
from fantasy_world.accel.compile import compile_blocks, compile_targets, compiled_blocks
from fantasy_world.accel.encoders import HostResident
from fantasy_world.accel.offload import enable_block_swap
from fantasy_world.errors import InputError
from fantasy_world.models.wan.config import wan_dit_config
from fantasy_world.models.wan.dit import WanDiT
from fantasy_world.pipeline import COMPILING_MESSAGE

SMALL = {"frames": 5, "height": 64, "width": 96, "steps": 2}


@pytest.fixture(scope="module")
def loaded():
    torch.set_num_threads(2)
    return FantasyWorldPipeline.from_pretrained("tiny", device="cpu").loaded


def fresh(loaded) -> FantasyWorldPipeline:
    """A pipeline over the shared loaded model with nothing cached and nothing compiled."""
    pipe = FantasyWorldPipeline(loaded, torch.device("cpu"), torch.float32)
    pipe.disable_compile()
    return pipe


def fake_compile(model: nn.Module, fail: bool = False) -> list[nn.Module]:
    """Mark every block compiled the way ``nn.Module.compile`` does; a failing "compiled" call raises."""
    blocks = compile_targets(model)
    for m in blocks:
        if fail:

            def broken(*args, **kwargs):  # noqa: ANN002, ANN003
                raise RuntimeError("inductor: simulated compiler failure")

            m._compiled_call_impl = broken
        else:
            m._compiled_call_impl = m._call_impl
    return blocks


def test_compile_is_ignored_on_cpu_and_default_pipeline_is_eager(loaded):
    pipe = fresh(loaded)
    assert pipe.enable_compile() is False and not pipe.compiled


def test_first_compiled_run_per_size_says_compiling_once(loaded):
    pipe = fresh(loaded)
    fake_compile(pipe.model)
    try:
        assert pipe.compiled
        seen = []
        first = pipe("a red ball", camera="orbit", seed=3, on_step=seen.append, **SMALL)
        assert [(s.step, s.phase) for s in seen] == [(0, "compiling"), (1, "denoising"), (2, "denoising")]
        assert seen[0].message == COMPILING_MESSAGE and seen[0].total == SMALL["steps"]
        seen.clear()
        again = pipe("a red ball", camera="orbit", seed=3, on_step=seen.append, **SMALL)
        assert [s.phase for s in seen] == ["denoising", "denoising"]  # same size: already compiled
        np.testing.assert_array_equal(first.images, again.images)
        seen.clear()
        pipe("a red ball", camera="orbit", seed=3, on_step=seen.append, **{**SMALL, "frames": 9})
        assert seen[0].phase == "compiling"  # a new size compiles again
    finally:
        pipe.disable_compile()


def test_failed_compilation_falls_back_to_eager_with_a_warning(loaded, caplog):
    pipe = fresh(loaded)
    eager = pipe("a red ball", camera="orbit", seed=4, **SMALL)
    fake_compile(pipe.model, fail=True)
    seen = []
    with caplog.at_level(logging.WARNING, logger="fantasy_world.pipeline"):
        out = pipe("a red ball", camera="orbit", seed=4, on_step=seen.append, **SMALL)
    assert not pipe.compiled and not compiled_blocks(pipe.model)
    assert any("compile failed" in r.message and "simulated" in r.message for r in caplog.records)
    assert [s.phase for s in seen] == ["compiling", "eager", "denoising", "denoising"]
    np.testing.assert_array_equal(out.images, eager.images)
    np.testing.assert_array_equal(out.depths, eager.depths)


def test_block_swap_wins_over_compile(caplog):
    cfg = wan_dit_config(
        "tiny", dim=32, ffn_dim=48, num_heads=2, num_layers=2, text_dim=16, text_len=8, freq_dim=16
    )
    model = WanDiT(cfg).eval()
    fake_compile(model)
    with caplog.at_level(logging.WARNING, logger="fantasy_world.accel.offload"):
        swap = enable_block_swap(model, "cpu")
    assert not compiled_blocks(model) and any("eagerly" in r.message for r in caplog.records)
    with pytest.raises(InputError, match="block swapping"):
        compile_blocks(model)
    swap.remove("cpu")
    assert compile_blocks(model) == cfg.num_layers  # after removing the swap, compiling is allowed
    assert len(compiled_blocks(model)) == cfg.num_layers


class StubEncoder(nn.Module):
    """Records where its weight was when it encoded, and how often."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.arange(6.0))
        self.register_buffer("scale", torch.full((2,), 2.0))
        self.devices: list[str] = []

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self.devices.append(self.weight.device.type)
        return x.sum() * torch.ones(1, 3, 4)


class CountingResident(HostResident):
    """The CPU plays the card: each move makes a distinct copy, so a device copy is told by its storage."""

    def __init__(self, module: nn.Module) -> None:
        self.copies = 0
        super().__init__(module, "cpu")

    def _to_device(self, host: torch.Tensor) -> torch.Tensor:
        self.copies += 1
        return host.clone()


def test_host_resident_moves_weights_only_while_used():
    enc = StubEncoder()
    home = CountingResident(enc)
    host_ptrs = [enc.weight.data_ptr(), enc.scale.data_ptr()]
    assert home.loads == 0 and home.copies == 0 and home.host_bytes == 8 * 4
    with home.on_device():
        assert [enc.weight.data_ptr(), enc.scale.data_ptr()] != host_ptrs and home.on_card
        assert enc.weight.data_ptr() not in host_ptrs and enc.scale.data_ptr() not in host_ptrs
        with home.on_device():  # nested use loads once
            enc.encode(torch.ones(2))
    assert home.loads == 1 and home.copies == 2 and not home.on_card  # one parameter, one buffer
    assert [enc.weight.data_ptr(), enc.scale.data_ptr()] == host_ptrs  # back on the same host copies
    torch.testing.assert_close(enc.weight.detach(), torch.arange(6.0), rtol=0, atol=0)
    assert isinstance(enc.weight, nn.Parameter) and len(enc.devices) == 1
    with home.on_device():
        pass
    assert home.loads == 2 and home.copies == 4


class StubTextEncoder(nn.Module):
    """An embedding and three blocks, like umT5's layout (``blocks``)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.blocks = nn.ModuleList(nn.Linear(8, 8) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        for block in self.blocks:
            x = block(x)
        return x


def test_streamed_text_encoder_blocks_visit_one_at_a_time_and_results_unchanged():
    torch.manual_seed(0)
    enc = StubTextEncoder().eval()
    x = torch.randn(2, 4)
    with torch.no_grad():
        ref = enc(x)
    home = HostResident(enc, "cpu", stream_blocks=True)
    host = [b.weight.data_ptr() for b in enc.blocks]
    seen: list[list[bool]] = []
    for b in enc.blocks:  # registered after the swap's hooks, so they see the block loaded
        b.register_forward_pre_hook(
            lambda m, a: seen.append([blk.weight.data_ptr() != p for blk, p in zip(enc.blocks, host)])
        )
    assert home.swap is not None and len(home._tensors) == 2  # embed weight and bias visit whole
    with torch.no_grad(), home.on_device():
        out = enc(x)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    assert len(seen) == 3
    for i, row in enumerate(seen):  # block i holds a device copy as it runs; at most the next one too
        assert row[i] and sum(row) <= 2, seen
    assert [b.weight.data_ptr() for b in enc.blocks] == host and not home.swap._gpu
    home.restore()
    assert home.swap is None


def test_offloaded_text_encoder_visits_once_per_new_prompt_and_results_unchanged(loaded):
    resident = fresh(loaded)
    kept = resident("a green cone", camera="orbit", seed=2, **SMALL)
    pipe = fresh(loaded)
    pipe.offload_encoders()
    try:
        home = pipe._text_home
        assert pipe.encoders_offloaded and home is not None
        out = pipe("a green cone", camera="orbit", seed=2, **SMALL)
        assert home.loads == 1  # prompt and negative prompt encoded in one visit
        np.testing.assert_array_equal(out.images, kept.images)
        np.testing.assert_array_equal(out.points, kept.points)
        pipe("a green cone", camera="orbit", seed=5, **SMALL)
        assert home.loads == 1  # cached prompt: the encoder stays off the card
        pipe("a yellow ring", camera="orbit", seed=5, **SMALL)
        assert home.loads == 2  # the prompt changed: one more visit (the negative prompt is cached)
    finally:
        pipe.keep_encoders()
    assert not pipe.encoders_offloaded


def test_prompt_and_negative_prompt_are_encoded_in_one_batch(loaded, monkeypatch):
    """One encoder call for both prompts (one pass of a streamed umT5 over the card), same features."""
    pipe = fresh(loaded)
    calls: list[list[str]] = []
    real = pipe.text_encoder.encode
    monkeypatch.setattr(
        pipe.text_encoder, "encode", lambda ps, **kw: calls.append(list(ps)) or real(ps, **kw)
    )
    cond, uncond = pipe._encode_prompts("a green cone", "blurry, static")
    assert calls == [["a green cone", "blurry, static"]]
    alone = [real([p], device="cpu") for p in ("a green cone", "blurry, static")]
    torch.testing.assert_close(cond, alone[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(uncond, alone[1], rtol=1e-5, atol=1e-6)
    assert cond.shape == alone[0].shape and uncond.shape == alone[1].shape
    again, neg = pipe._encode_prompts("a yellow ring", "blurry, static")
    assert calls[1:] == [["a yellow ring"]] and neg is uncond  # the cached negative is not encoded again
    same, none = pipe._encode_prompts("same", "same")
    assert calls[2:] == [["same"]] and none is same  # one prompt used twice is encoded once
    assert pipe.encode_prompt("a yellow ring") is again and len(calls) == 3


def test_prompt_cache_is_bounded_and_keeps_the_pair_in_use(loaded, monkeypatch):
    from fantasy_world.pipeline import PROMPT_CACHE_SIZE

    pipe = fresh(loaded)
    fake = torch.zeros(1, 4, 8)
    monkeypatch.setattr(pipe.text_encoder, "encode", lambda ps, **kw: fake.expand(len(ps), 4, 8).clone())
    pipe._encode_prompts("negative", None)
    for i in range(PROMPT_CACHE_SIZE - 1):
        pipe._encode_prompts(f"p{i}", "negative")
    assert len(pipe._prompt_cache) == PROMPT_CACHE_SIZE
    cond, uncond = pipe._encode_prompts("one more", "negative")  # over the bound: cleared, pair kept
    assert set(pipe._prompt_cache) == {"one more", "negative"} and uncond is not None


def test_start_image_conditioning_cached_by_pixels(loaded, monkeypatch):
    pipe = fresh(loaded)
    stub = StubEncoder()
    pipe.image_encoder = stub
    pipe._image_home = CountingResident(stub)
    vae_calls = []
    real = pipe.vae.encode
    monkeypatch.setattr(pipe.vae, "encode", lambda v: vae_calls.append(1) or real(v))
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, 64, 96, generator=g) * 2 - 1
    clip1, y1 = pipe._image_conditioning(img, 5, 64, 96)
    clip2, y2 = pipe._image_conditioning(img.clone(), 5, 64, 96)
    assert len(stub.devices) == 1 and len(vae_calls) == 1 and pipe._image_home.loads == 1
    assert clip2 is clip1 and y2 is y1
    other = img.clone()
    other[0, 0, 0] += 0.5
    pipe._image_conditioning(other, 5, 64, 96)
    pipe._image_conditioning(img, 9, 64, 96)  # same image, other length: another y
    assert len(stub.devices) == 3 and len(vae_calls) == 3


def test_cli_and_studio_switches_reach_the_loader(monkeypatch, tmp_path):
    from app import gpu_queue
    from fantasy_world.cli import main

    calls = []

    def fake(name, device=None, dtype=None, **kw):  # noqa: ANN001, ANN003
        calls.append(kw)
        raise InputError("stop after loading")

    monkeypatch.setattr(FantasyWorldPipeline, "from_pretrained", staticmethod(fake))
    base = ["generate", "--prompt", "x", "--out", str(tmp_path / "o")]
    assert main(base) == 2 and main([*base, "--no-compile", "--keep-encoders", "--fp8-attention"]) == 2
    assert calls == [
        {"compile": True, "keep_encoders": None, "fp8": False, "fp8_attention": False},
        {"compile": False, "keep_encoders": True, "fp8": False, "fp8_attention": True},
    ]
    calls.clear()
    monkeypatch.delenv(gpu_queue.ENV_NO_COMPILE, raising=False)
    monkeypatch.delenv(gpu_queue.ENV_KEEP_ENCODERS, raising=False)
    monkeypatch.setenv(gpu_queue.ENV_FP8, "unset")  # records the original state, restored afterwards
    monkeypatch.delenv(gpu_queue.ENV_FP8)
    envs = (
        {},
        {gpu_queue.ENV_NO_COMPILE: "1", gpu_queue.ENV_KEEP_ENCODERS: "1", gpu_queue.ENV_FP8: "1"},
        {gpu_queue.ENV_FP8: "attention"},
    )
    for env in envs:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        with pytest.raises(InputError):
            gpu_queue.load_pipeline("tiny")
    assert calls == [
        {"compile": True, "keep_encoders": None, "fp8": False, "fp8_attention": False},
        {"compile": False, "keep_encoders": True, "fp8": True, "fp8_attention": False},
        {"compile": False, "keep_encoders": True, "fp8": True, "fp8_attention": True},
    ]


def test_vae_decode_is_tiled_only_when_the_untiled_decode_might_not_fit(loaded, monkeypatch) -> None:
    """Tiling multiplies the decoder's work (overlapping tiles), so a tiling model decodes untiled when
    the card has room: the estimate grows with the latent area and the VAE's dtype."""
    import dataclasses

    vae = loaded.vae
    one = vae.untiled_decode_bytes(42, 74)
    assert one > 0 and vae.untiled_decode_bytes(84, 74) == 2 * one
    pipe = FantasyWorldPipeline(
        dataclasses.replace(loaded, tiled_decode=True), torch.device("cpu"), torch.float32
    )
    latents = torch.zeros(1, 16, 3, 42, 74)
    assert pipe._tile_decode(latents) is True  # a CPU keeps the model's setting
    pipe.device = torch.device("cuda")  # what the check reads on a card (no CUDA call is made here)
    spare = {"free": 10 * one, "reserved": 0, "allocated": 0}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (spare["free"], 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: spare["reserved"])
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: spare["allocated"])
    assert pipe._tile_decode(latents) is False
    spare["free"] = one  # 25 % margin missing
    assert pipe._tile_decode(latents) is True
    spare["reserved"] = one  # the allocator's cached blocks count as room
    assert pipe._tile_decode(latents) is False
    pipe.loaded = dataclasses.replace(loaded, tiled_decode=False)
    spare["free"] = spare["reserved"] = 0
    assert pipe._tile_decode(latents) is False  # a model that never tiles


@pytest.mark.parametrize(
    ("flags", "expect"),
    [
        ((), None),
        (("--fp8",), "1"),
        (("--fp8-attention",), "attention"),
        (("--fp8", "--fp8-attention"), "attention"),
    ],
)
def test_app_fp8_flags_reach_the_studio_loader(monkeypatch, flags, expect) -> None:
    """``python app.py --fp8`` / ``--fp8-attention`` set what ``gpu_queue.load_pipeline`` reads."""
    import app.server as server
    from app import gpu_queue

    monkeypatch.setenv(gpu_queue.ENV_FP8, "unset")  # records the original state, restored afterwards
    monkeypatch.delenv(gpu_queue.ENV_FP8)
    monkeypatch.setattr(server, "create_app", lambda studio: (None, None))
    monkeypatch.setattr(server, "studio_for_gpus", lambda gpus, parser=None: None)
    monkeypatch.setattr(server.uvicorn, "run", lambda *a, **k: None)
    server.main(["--port", "0", *flags])
    import os

    assert os.environ.get(gpu_queue.ENV_FP8) == expect
