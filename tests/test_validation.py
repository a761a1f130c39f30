import pytest

from fantasy_world.errors import InputError
from fantasy_world.validation import (
    SizeLimits,
    check_frames,
    check_guidance,
    check_prompt,
    check_seed,
    check_size,
    check_steps,
)


def test_valid_values_pass_through():
    assert check_prompt("a red ball") == "a red ball"
    assert check_frames(33) == 33
    assert check_size(96, 160) == (96, 160)
    assert check_steps(8) == 8
    assert check_guidance(5) == 5.0
    assert check_seed(0) == 0


@pytest.mark.parametrize("frames", [0, 2, 32, 34, -3, 1.0, "33", True, 10001])
def test_frames_must_be_1_plus_4k(frames):
    with pytest.raises(InputError, match=r"frames=.*1\+4k"):
        check_frames(frames)


@pytest.mark.parametrize(("h", "w"), [(100, 160), (96, 150), (0, 160), (16, 160), (96.0, 160), (4096, 4096)])
def test_bad_sizes(h, w):
    with pytest.raises(InputError):
        check_size(h, w)


def test_size_bound_is_per_device():
    with pytest.raises(InputError, match="pixels"):
        check_size(480, 832, SizeLimits(max_pixels=256 * 256))


@pytest.mark.parametrize("prompt", ["", "   ", 3, None, "x" * 5000, "a\x00b"])
def test_bad_prompts(prompt):
    with pytest.raises(InputError, match="prompt"):
        check_prompt(prompt)


@pytest.mark.parametrize("g", [0.5, float("nan"), float("inf"), "5", 100])
def test_bad_guidance(g):
    with pytest.raises(InputError, match="guidance"):
        check_guidance(g)


def test_bad_steps_and_seed():
    with pytest.raises(InputError, match="steps"):
        check_steps(0)
    with pytest.raises(InputError, match="seed"):
        check_seed(-5)
