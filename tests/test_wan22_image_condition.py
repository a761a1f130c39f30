"""First/last-frame conditioning of the Wan2.2 experts against the mask written out by hand."""

from __future__ import annotations

import pytest
import torch

from fantasy_world.errors import InputError
from fantasy_world.models.fantasy.image_condition import conditioning_mask, conditioning_video


def test_mask_first_and_last_frame() -> None:
    first_only = conditioning_mask(9, 2, 3, last_frame=False)
    both = conditioning_mask(9, 2, 3, last_frame=True)
    assert first_only.shape == both.shape == (1, 4, 3, 2, 3)
    # padded frames 0,0,0,0,1..8 -> latent f holds padded 4f..4f+3; the last video frame is padded index 11
    want = torch.zeros(4, 3)
    want[:, 0] = 1.0
    assert torch.equal(first_only[0, :, :, 0, 0], want)
    want[3, 2] = 1.0
    assert torch.equal(both[0, :, :, 1, 2], want)
    with pytest.raises(InputError, match="1 \\+ 4"):
        conditioning_mask(8, 2, 3, last_frame=True)


def test_video_places_first_and_last_image() -> None:
    first, last = torch.full((3, 4, 6), 0.5), torch.full((3, 4, 6), -0.25)
    video = conditioning_video(first, 5, last)
    assert video.shape == (1, 3, 5, 4, 6)
    assert torch.equal(video[0, :, 0], first) and torch.equal(video[0, :, -1], last)
    assert not video[0, :, 1:-1].any()
    assert not conditioning_video(first, 5)[0, :, 1:].any()
    with pytest.raises(InputError, match="like the first"):
        conditioning_video(first, 5, torch.zeros(3, 4, 5))
