"""Expert residency: at most one expert on the device, moved once at the switch, outputs unchanged."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fantasy_world.errors import InputError
from fantasy_world.models.fantasy.config import fantasy_world_config, reduced
from fantasy_world.models.fantasy.expert_residency import ExpertResidency, _chunks, park_on_host
from fantasy_world.models.fantasy.experts import WAN22_FUN_EXPERTS
from fantasy_world.models.fantasy.model import FantasyWorldModel
from fantasy_world.sampling.flow_matching import flow_match_schedule

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pair() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "high": nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8)),
        "low": nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8)),
    }


class _CopyingResidency(ExpertResidency):
    """On a CPU-only box the "device" copy is a fresh CPU tensor, so placement is observable."""

    def _upload(self, host: torch.Tensor) -> torch.Tensor:
        return host.clone()


def test_placement_and_single_move_at_the_switch() -> None:
    experts = _pair()
    residency = _CopyingResidency(experts, WAN22_FUN_EXPERTS, device="cpu", pin=False)
    assert residency.on_host("high") and residency.on_host("low")
    # a few large host buffers (here one, the expert is small); parking again does not copy
    storages = {t.untyped_storage().data_ptr() for t in experts["high"].parameters()}
    assert len(storages) == 1
    assert _chunks({"a": torch.zeros(3), "b": torch.zeros(2), "c": torch.zeros(9)}, ["a", "b", "c"], 5) == [
        ["a", "b"],
        ["c"],
    ]
    assert park_on_host(experts["high"], pin=False) is residency._host["high"]
    ts = flow_match_schedule(50, shift=5.0).timesteps[16:19]  # 906.59 is the last high step
    names = [residency.for_timestep(t)[0] for t in ts]
    assert names == ["high", "high", "low"]
    assert [(s.offloaded, s.loaded) for s in residency.switches] == [(None, "high"), ("high", "low")]
    assert not residency.on_host("low") and residency.on_host("high")
    assert residency.switches[1].bytes_moved == (4 * 8 + 8 + 8 + 8 + 8 + 8) * 4 + 8  # + num_batches_tracked
    residency.release()
    assert residency.on_host("low") and residency.active is None
    with pytest.raises(InputError, match="expected exactly"):
        ExpertResidency({"high": experts["high"]}, WAN22_FUN_EXPERTS, device="cpu")
    with pytest.raises(InputError, match="one of"):
        residency.activate("medium")


@torch.no_grad()
def test_steps_across_the_switch_match_the_experts_run_directly() -> None:
    cfg = reduced(fantasy_world_config("wan2.2-fun-a14b"))
    experts = {}
    for i, name in enumerate(("high", "low")):
        torch.manual_seed(i)
        experts[name] = FantasyWorldModel(cfg).eval()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 16, 2, 4, 6, generator=g)
    y = torch.randn(1, 20, 2, 4, 6, generator=g)
    ctx = torch.randn(1, 5, cfg.dit.text_dim, generator=g)
    plucker = torch.randn(1, 5, 32, 48, 6, generator=g)
    ts = flow_match_schedule(50, shift=5.0).timesteps[16:19]
    direct = []
    for t in ts:
        model = experts[WAN22_FUN_EXPERTS.expert_for(t)]
        tm = torch.tensor([WAN22_FUN_EXPERTS.model_timestep(t)])
        direct.append(model(x, tm, ctx, y=y, camera=model.encode_camera(plucker)).velocity)
    residency = ExpertResidency(experts, WAN22_FUN_EXPERTS, device="cpu", pin=False)
    for t, want in zip(ts, direct):
        _, model = residency.for_timestep(t)
        tm = torch.tensor([WAN22_FUN_EXPERTS.model_timestep(t)])
        assert torch.equal(model(x, tm, ctx, y=y, camera=model.encode_camera(plucker)).velocity, want)
    assert len(residency.switches) == 2
