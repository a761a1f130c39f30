"""The synthetic suite end to end on 2 held-out clips: a random model through the real pipeline, and an
oracle pipeline (ground truth in, ground truth out) that must score perfectly."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_training_helpers import HashTextEncoder, small_models

from fantasy_world.data.synthetic_dataset import SyntheticWorldDataset
from fantasy_world.evaluation.suite import SuiteConfig, run_synthetic_suite
from fantasy_world.model_folder import GenerationDefaults, LoadedModel
from fantasy_world.pipeline import FantasyWorldPipeline

SMALL = GenerationDefaults(frames=5, height=32, width=48, steps=2, guidance=2.0)


def test_random_model_through_the_pipeline(tmp_path):
    model, vae = small_models(0)
    loaded = LoadedModel(
        "random-small", model.eval(), vae.eval(), HashTextEncoder(), None, SMALL, trained=False
    )
    pipe = FantasyWorldPipeline(loaded, torch.device("cpu"), torch.float32)
    result = run_synthetic_suite(pipe, SuiteConfig(clips=2))
    json.dumps(result, default=str)  # serialisable as written by the CLI
    s = result["summary"]
    assert result["frames"] == 5 and len(result["clips"]) == 2 and not result["model_trained"]
    assert s["recon"]["pairs"] == 2 * 10
    for key in ("depth_abs_rel", "depth_delta1", "rre_median_deg"):
        assert math.isfinite(s["recon"][key]), key
    assert 0 <= s["recon"]["depth_delta1"] <= 1 and s["recon"]["depth_abs_rel"] > 0
    assert math.isfinite(s["vae"]["psnr_db"]) and s["vae"]["psnr_db"] < 30  # an untrained VAE
    assert math.isfinite(s["gen"]["camera_rot_median_deg"])
    assert 0 <= s["gen"]["prompt_adherence"] <= 1
    assert set(result["targets"]) >= {"recon.depth_abs_rel", "gen.prompt_adherence", "vae.psnr_db"}
    assert result["targets"]["vae.psnr_db"]["pass"] is False


class _IdentityVAE:
    def encode(self, x):  # noqa: ANN001, ANN201
        return x

    def decode(self, x):  # noqa: ANN001, ANN201
        return x


class OraclePipeline:
    """Answers with the ground truth of the clip the suite is on (clips come in order; seeds are known)."""

    def __init__(self, frames: int, height: int, width: int) -> None:
        self.defaults = GenerationDefaults(frames=frames, height=height, width=width)
        self.name, self.device, self.vae_dtype = "oracle", torch.device("cpu"), torch.float32
        self.loaded = SimpleNamespace(trained=True)
        self.vae = _IdentityVAE()
        self.ds = SyntheticWorldDataset("eval", frames, height, width)
        self.index = 0

    def _clip(self):  # noqa: ANN202
        return self.ds[self.index]

    def reconstruct(self, video: np.ndarray) -> SimpleNamespace:
        clip = self._clip()
        assert np.array_equal(video, clip.frames_uint8().numpy())
        return SimpleNamespace(depths=clip.depth.numpy() * 3.0, cam_c2w=clip.c2w.double().numpy())

    def __call__(self, prompt: str, camera, **kw) -> SimpleNamespace:  # noqa: ANN001
        clip = self._clip()
        assert prompt == clip.caption
        metres = float(np.linalg.norm(clip.c2w[:, :3, 3].double().numpy()))
        units = float(np.linalg.norm(camera.c2w[:, :3, 3]))
        depth = clip.depth.double().numpy() * (units / metres if metres > 1e-6 else 1.0)
        c2w = camera.c2w.copy()
        self.index += 1
        return SimpleNamespace(
            cam_c2w=c2w,
            requested_c2w=camera.c2w.copy(),
            requested_intrinsics=camera.intrinsics.copy(),
            intrinsics=camera.intrinsics.copy(),
            depths=np.where(clip.valid.numpy(), depth, 0.0),
            images=clip.frames_uint8().numpy(),
        )


def test_oracle_scores_perfectly():
    pipe = OraclePipeline(frames=5, height=32, width=48)
    result = run_synthetic_suite(pipe, SuiteConfig(clips=2))
    s = result["summary"]
    assert s["recon"]["depth_abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert s["recon"]["depth_delta1"] == 1.0
    assert s["recon"]["rre_median_deg"] == pytest.approx(0.0, abs=1e-3)
    assert s["vae"]["psnr_db"] == 100.0
    assert s["gen"]["camera_rot_median_deg"] == pytest.approx(0.0, abs=1e-6)
    trans = s["gen"]["camera_trans_err_ratio"]
    assert math.isnan(trans) or trans == pytest.approx(0.0, abs=1e-9)
    assert s["gen"]["prompt_adherence"] == s["gen"]["prompt_adherence_gt_render"]
    assert s["gen"]["consistency_median_rel_error"] < 2e-3
    assert result["targets"]["recon.depth_abs_rel"]["pass"] is True
