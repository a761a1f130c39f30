import math

import pytest
import torch

from fantasy_world.errors import InputError
from fantasy_world.sampling import apply_guidance, flow_match_schedule, seeded_noise


def test_official_timestep_table_50_steps():
    # Reference §3.4: 1000, 995.9, ..., 172.4, 92.6 for 50 steps with shift 5.
    sched = flow_match_schedule(50, shift=5.0)
    ts = sched.timesteps
    assert ts.shape == (50,)
    assert ts[0].item() == pytest.approx(1000.0)
    assert ts[1].item() == pytest.approx(995.9, abs=0.05)
    assert ts[-2].item() == pytest.approx(172.4, abs=0.05)
    assert ts[-1].item() == pytest.approx(92.6, abs=0.05)
    assert sched.sigmas[-1].item() == 0.0
    assert torch.all(ts[1:] < ts[:-1])


def test_schedule_matches_closed_form():
    steps, shift = 7, 3.0
    sched = flow_match_schedule(steps, shift=shift)
    for i in range(steps):
        s = 1.0 - i / steps
        assert sched.sigmas[i].item() == pytest.approx(shift * s / (1 + (shift - 1) * s), rel=1e-12)


def test_euler_steps_reach_data_for_exact_velocity():
    # With the exact flow velocity (noise - x0) the Euler sampler lands on x0 whatever the schedule.
    torch.manual_seed(0)
    x0 = torch.randn(2, 4, 3, 5)
    noise = torch.randn_like(x0)
    sched = flow_match_schedule(9, shift=5.0)
    x = noise.clone()
    for i in range(sched.steps):
        x = sched.step(x, noise - x0, i)
    assert torch.allclose(x, x0, atol=1e-5)
    assert torch.allclose(sched.add_noise(x0, noise, 0), noise)


def test_guidance_combination():
    c, u = torch.tensor([2.0]), torch.tensor([1.0])
    assert apply_guidance(c, u, 5.0).item() == pytest.approx(6.0)
    assert apply_guidance(c, u, 1.0) is c
    assert apply_guidance(c, None, 5.0) is c


def test_noise_is_seeded_and_device_independent():
    a = seeded_noise((2, 3), seed=7)
    b = seeded_noise((2, 3), seed=7)
    c = seeded_noise((2, 3), seed=8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert math.isfinite(a.sum().item())


@pytest.mark.parametrize("bad", [0, -1, 1001, 2.5, True])
def test_bad_steps_rejected(bad):
    with pytest.raises(InputError, match="steps"):
        flow_match_schedule(bad)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", 2**63])
def test_bad_seed_rejected(bad):
    with pytest.raises(InputError, match="seed"):
        seeded_noise((1,), bad)
