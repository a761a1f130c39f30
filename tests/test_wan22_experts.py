"""Expert table of the two-expert Wan2.2 model: the official bf16 / strictly-greater rule, and diffusers'
``boundary_ratio`` switch (WanPipeline with transformer + transformer_2) as an independent reference, both
per decision and for a whole guided sampling loop across the switch."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel

from bench.harness.diffusers_ref import diffusers_kwargs, to_diffusers
from fantasy_world.errors import InputError
from fantasy_world.models.fantasy.expert_residency import ExpertResidency
from fantasy_world.models.fantasy.experts import WAN22_FUN_EXPERTS, ExpertTable, expert_table
from fantasy_world.models.fantasy.model import FantasyWorldOutput
from fantasy_world.models.wan.config import wan_dit_config
from fantasy_world.models.wan.dit import WanDiT
from fantasy_world.sampling.flow_matching import flow_match_schedule
from fantasy_world.sampling.guidance import SequentialGuidance
from fantasy_world.sampling.sampler import PassInputs, StepModel, sample

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_official_switch_at_50_steps_shift_5() -> None:
    table = WAN22_FUN_EXPERTS
    ts = flow_match_schedule(50, shift=5.0).timesteps
    # hand values: sigma = 1 - i/50 shifted by 5s/(1+4s); 1000 x that, then bf16 (spacing 4 in [512, 1024))
    assert float(ts[17]) == pytest.approx(1000 * 3.3 / 3.64, abs=1e-9)  # 906.593...
    assert table.model_timestep(ts[17]) == 908.0
    assert float(ts[18]) == pytest.approx(1000 * 3.2 / 3.56, abs=1e-9)  # 898.876...
    assert table.model_timestep(ts[18]) == 900.0
    plan = table.plan(ts)
    assert plan == ["high"] * 18 + ["low"] * 32
    assert table.switch_step(ts) == 18
    assert table.expert_for(900.0) == "low" and table.expert_for(902.0) == "high"
    assert table.expert_for(901.9) == "low"  # 901.9 arrives as 900.0 in bf16: not strictly greater


def test_table_validation_and_lookup() -> None:
    assert expert_table("wan2.2-fun-a14b") is WAN22_FUN_EXPERTS
    assert expert_table("wan2.2-fun-a14b-reduced") is WAN22_FUN_EXPERTS
    assert expert_table("wan2.1-i2v-14b") is None
    with pytest.raises(InputError, match="boundary"):
        ExpertTable(boundary=1000.0)
    with pytest.raises(InputError, match="two different"):
        ExpertTable(high="a", low="a")
    with pytest.raises(InputError, match="decreasing"):
        WAN22_FUN_EXPERTS.switch_step([950.0, 800.0, 950.0])
    with pytest.raises(InputError, match="one value"):
        WAN22_FUN_EXPERTS.model_timestep(torch.tensor([1.0, 2.0]))
    assert WAN22_FUN_EXPERTS.switch_step([999.0, 950.0]) is None


class _ScheduleOverride(FlowMatchEulerDiscreteScheduler):
    """diffusers' scheduler with the timesteps we want to probe (the switch logic under test is the pipeline's)."""

    probe: list[float] = []

    def set_timesteps(self, num_inference_steps=None, device=None, **kwargs):  # noqa: ANN001
        self.timesteps = torch.tensor(self.probe, dtype=torch.float32)
        self.sigmas = torch.cat([self.timesteps / 1000.0, torch.zeros(1)])
        self._step_index = None
        self._begin_index = None


def _tiny_transformer() -> WanTransformer3DModel:
    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=1,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=8,
        freq_dim=8,
        ffn_dim=8,
        num_layers=1,
        image_dim=None,
    ).eval()


def _diffusers_choices(timesteps: list[float]) -> list[str]:
    """Which transformer diffusers' WanPipeline(boundary_ratio=0.9) calls at each of ``timesteps``."""
    high, low = _tiny_transformer(), _tiny_transformer()
    calls: list[str] = []
    high.register_forward_pre_hook(lambda m, a: calls.append("high"))
    low.register_forward_pre_hook(lambda m, a: calls.append("low"))
    scheduler = _ScheduleOverride(shift=5.0)
    scheduler.probe = timesteps
    pipe = WanPipeline(
        tokenizer=None,
        text_encoder=None,
        vae=None,
        scheduler=scheduler,
        transformer=high,
        transformer_2=low,
        boundary_ratio=0.9,
    )
    pipe.set_progress_bar_config(disable=True)
    pipe(
        prompt_embeds=torch.zeros(1, 4, 8),
        negative_prompt_embeds=None,
        guidance_scale=1.0,
        guidance_scale_2=1.0,
        height=16,
        width=16,
        num_frames=1,
        num_inference_steps=len(timesteps),
        output_type="latent",
    )
    assert len(calls) == len(timesteps)
    return calls


def test_expert_table_matches_diffusers_boundary_ratio_away_from_bf16_ties() -> None:
    """Same boundary (0.9·1000), same decisions, except within one bf16 step of 900 where the official
    code compares the rounded timestep strictly (documented divergence, checked value by value)."""
    schedule = [float(t) for t in flow_match_schedule(50, shift=5.0).timesteps]
    near = [903.0, 901.5, 900.5, 900.0, 899.0, 897.0]
    probe = schedule[:20] + near
    ref = _diffusers_choices(probe)
    ours = WAN22_FUN_EXPERTS.plan(probe)
    assert ref[:20] == ours[:20] == ["high"] * 18 + ["low"] * 2
    assert dict(zip(near, ref[20:])) == {
        903.0: "high",
        901.5: "high",
        900.5: "high",
        900.0: "high",
        899.0: "low",
        897.0: "low",
    }
    assert dict(zip(near, ours[20:])) == {
        903.0: "high",
        901.5: "low",
        900.5: "low",
        900.0: "low",
        899.0: "low",
        897.0: "low",
    }
    for t, r, o in zip(probe, ref, ours):
        if abs(t - 900.0) > 2.0:  # bf16 spacing at 900 is 4: farther than half of it, the rules agree
            assert r == o, t


class _DiTOnly(torch.nn.Module):
    """A Wan DiT behind FantasyWorldModel's call signature (the loop under test only needs the velocity)."""

    def __init__(self, dit: WanDiT, tag: str) -> None:
        super().__init__()
        self.dit, self.tag = dit, tag

    def forward(
        self, x, t, context, clip_fea=None, y=None, camera=None, return_geometry=False, image_hw=None
    ):  # noqa: ANN001
        return FantasyWorldOutput(self.dit(x, t, context), self.tag if return_geometry else None)


@torch.no_grad()
def test_two_expert_sampling_loop_matches_diffusers_wan22_pipeline() -> None:
    """Our sampler choosing experts through ExpertResidency (CFG 5, 4 steps across the switch, no bf16 tie)
    against diffusers' WanPipeline with transformer / transformer_2 and boundary_ratio 0.9, same weights."""
    cfg = wan_dit_config(
        "wan2.1-t2v-1.3b", dim=24, ffn_dim=32, num_heads=2, num_layers=2, text_dim=8, freq_dim=16, text_len=6
    )
    dits, refs = {}, {}
    g = torch.Generator().manual_seed(11)
    for name in ("high", "low"):
        dit = WanDiT(cfg).eval()
        for pname, p in dit.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            p.copy_(
                noise / math.sqrt(p[0].numel())
                if p.ndim >= 2 and "modulation" not in pname
                else 0.1 * noise + 1
            )
        dits[name] = dit
        ref = WanTransformer3DModel(**diffusers_kwargs(cfg)).eval()
        ref.load_state_dict(to_diffusers(dit.state_dict()), strict=True)
        refs[name] = ref
    schedule = flow_match_schedule(4, shift=5.0)
    assert WAN22_FUN_EXPERTS.plan(schedule.timesteps) == ["high", "high", "low", "low"]
    latents = torch.randn(1, 16, 2, 4, 6, generator=g)
    cond = torch.randn(1, cfg.text_len, cfg.text_dim, generator=g)
    uncond = torch.randn(1, cfg.text_len, cfg.text_dim, generator=g)

    residency = ExpertResidency(
        {n: _DiTOnly(d, n) for n, d in dits.items()}, WAN22_FUN_EXPERTS, "cpu", pin=False
    )
    ran: list[str] = []

    def select(i: int, t: torch.Tensor) -> StepModel:
        name, model = residency.for_timestep(t)
        ran.append(name)
        return StepModel(model, None)

    ours, geometry = sample(
        None,
        SequentialGuidance(),
        schedule,
        latents.clone(),
        PassInputs(cond, uncond, (32, 48)),
        guidance=5.0,
        dtype=torch.float32,
        select=select,
    )
    assert ran == ["high", "high", "low", "low"] and geometry == "low"

    scheduler = _ScheduleOverride(shift=5.0)
    scheduler.probe = [float(t) for t in schedule.timesteps]
    pipe = WanPipeline(
        tokenizer=None,
        text_encoder=None,
        vae=None,
        scheduler=scheduler,
        transformer=refs["high"],
        transformer_2=refs["low"],
        boundary_ratio=0.9,
    )
    pipe.set_progress_bar_config(disable=True)
    want = pipe(
        prompt_embeds=cond,
        negative_prompt_embeds=uncond,
        guidance_scale=5.0,
        guidance_scale_2=5.0,
        height=32,
        width=48,
        num_frames=5,
        num_inference_steps=4,
        latents=latents.clone(),
        output_type="latent",
    ).frames
    assert ((ours - want).norm() / want.norm()).item() < 1e-5


def test_step_cache_never_reuses_a_step_across_the_expert_switch() -> None:
    """A cached velocity belongs to the expert that computed it: the first step of the other expert runs."""
    from fantasy_world.sampling.step_cache import StepCache, StepCacheConfig

    class Const(torch.nn.Module):
        def __init__(self, value: float) -> None:
            super().__init__()
            self.value, self.calls = value, 0

        def forward(self, x, t, context, **_):  # noqa: ANN001
            self.calls += 1
            return FantasyWorldOutput(torch.full_like(x, self.value), None)

    high, low = Const(1.0), Const(2.0)
    cache = StepCache(SequentialGuidance(), StepCacheConfig(threshold=1e9, warmup=2, max_skip=5))
    cache.reset()
    x, ctx = torch.zeros(1, 1), torch.zeros(1, 1)
    for i, (model, t) in enumerate([(high, 950.0), (high, 940.0), (high, 930.0), (low, 890.0), (low, 880.0)]):
        out, _ = cache(model, x, torch.tensor([t]), ctx, None, want_geo=False)
        assert out.velocity.item() == model.value, i  # never the other expert's velocity
    # step 3 reused high's velocity; after the switch the drift rate starts over: low computes both its steps
    assert (high.calls, low.calls) == (2, 2)
