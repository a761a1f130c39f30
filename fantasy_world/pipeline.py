"""Text/image + camera path → video, depth, point maps and cameras, in one diffusion pass.

The pipeline owns the frozen encoders (text, optional CLIP image tower, VAE) and a
:class:`~fantasy_world.models.fantasy.model.FantasyWorldModel`. One call validates the request, turns the
camera path into Plücker maps (encoded once, reused every step), runs flow-matching sampling with
classifier-free guidance, reads geometry out of the conditional pass at the last step (and optionally
every K steps as a live preview), decodes the video and returns a :class:`WorldResult`.
"""

from __future__ import annotations

import functools
import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fantasy_world.camera import CameraSource, CameraTrajectory, plucker_rays, resolve_camera
from fantasy_world.errors import GenerationCancelled, InputError, OutOfMemory
from fantasy_world.geometry import WorldData
from fantasy_world.model_folder import LoadedModel, load_model
from fantasy_world.quant.selection import is_quantized
from fantasy_world.readout import PredictedGeometry, read_geometry
from fantasy_world.sampling import flow_match_schedule, seeded_noise
from fantasy_world.sampling.guidance import GuidanceRunner, SequentialGuidance
from fantasy_world.sampling.sampler import PassInputs, sample
from fantasy_world.utils.versions import package_versions
from fantasy_world.validation import (
    check_frames,
    check_guidance,
    check_prompt,
    check_seed,
    check_size,
    check_steps,
)

log = logging.getLogger(__name__)

# Wan2.1's standard negative prompt (English rendering of the published Chinese one).
WAN_NEGATIVE_PROMPT = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, "
    "poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still "
    "picture, messy background, three legs, many people in the background, walking backwards"
)


@dataclass
class GeometryPreview(PredictedGeometry):
    """Geometry read out of the conditional pass at an intermediate step (no video decode)."""

    step: int = 0


@dataclass
class StepInfo:
    """What ``on_step`` receives after every denoising step."""

    step: int  # 1-based index of the finished step
    total: int
    timestep: float
    elapsed_s: float
    preview: GeometryPreview | None = None


WorldResult = WorldData  # the pipeline's name for its result; one type from here to the bundle and viewer


CancelFlag = threading.Event | Callable[[], bool] | None


def _cancelled(cancel: CancelFlag) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def _as_uint8_video(video: torch.Tensor) -> np.ndarray:
    """[3, T, H, W] in [-1, 1] → uint8 [T, H, W, 3]."""
    v = ((video.float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return v.permute(1, 2, 3, 0).cpu().numpy()


def _image_to_tensor(image: Any, height: int, width: int) -> torch.Tensor:
    """A PIL image, path or uint8 HWC array → [3, H, W] in [-1, 1], resized and centre-cropped to fit."""
    from PIL import Image

    from fantasy_world.validation import check_image_file

    if isinstance(image, (str, Path)):
        check_image_file(image)  # bytes, header pixel count and a full decode, before any resizing
        with Image.open(image) as im:
            image = im.convert("RGB")
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] not in (3, 4):
            raise InputError(f"image array: expected uint8 [H, W, 3], got {image.dtype} {list(image.shape)}")
        image = Image.fromarray(image[..., :3])
    if not isinstance(image, Image.Image):
        raise InputError(f"image: expected a file path, PIL image or uint8 array, got {type(image).__name__}")
    image = image.convert("RGB")
    scale = max(width / image.width, height / image.height)
    resized = image.resize(
        (max(width, round(image.width * scale)), max(height, round(image.height * scale))), Image.BICUBIC
    )
    left, top = (resized.width - width) // 2, (resized.height - height) // 2
    arr = np.asarray(resized.crop((left, top, left + width, top + height)), dtype=np.float32)
    return torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1.0


def _release_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _recover_from_oom(fn: Callable[..., WorldResult]) -> Callable[..., WorldResult]:
    """Turn a device out-of-memory error into a one-line :class:`OutOfMemory` after freeing the memory.

    The traceback (which pins every intermediate tensor of the failed run) is dropped before the cache is
    emptied, so the next request starts with the memory it would have had anyway.
    """

    @functools.wraps(fn)
    def wrapper(self: FantasyWorldPipeline, *args: Any, **kwargs: Any) -> WorldResult:
        failure: str | None = None
        try:
            return fn(self, *args, **kwargs)
        except torch.OutOfMemoryError as exc:
            failure = str(exc).splitlines()[0][:200] if str(exc) else "out of memory"
        except GenerationCancelled:
            _release_memory(self.device)
            raise
        _release_memory(self.device)
        raise OutOfMemory(
            f"{self.device} ran out of memory ({failure}); use fewer frames, a smaller size, fewer points, "
            "or an offload mode, then try again"
        )

    return wrapper


class FantasyWorldPipeline:
    """The generation entry point. Build it with :meth:`from_pretrained`."""

    def __init__(self, loaded: LoadedModel, device: torch.device, dtype: torch.dtype) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.vae = loaded.vae
        self.text_encoder = loaded.text_encoder
        self.image_encoder = loaded.image_encoder
        self.defaults = loaded.defaults
        self.name = loaded.name
        self.device = device
        self.dtype = dtype
        self._prompt_cache: dict[str, torch.Tensor] = {}
        self._runner: GuidanceRunner = SequentialGuidance()

    @property
    def guidance_runner(self) -> GuidanceRunner:
        """How the two guidance passes of a step run (``fantasy_world.sampling.guidance``); reset every call."""
        return self._runner

    @guidance_runner.setter
    def guidance_runner(self, runner: GuidanceRunner | None) -> None:
        if runner is None:
            runner = SequentialGuidance()  # the official two passes
        if not isinstance(runner, GuidanceRunner):
            raise InputError(
                f"guidance_runner: expected a GuidanceRunner (fantasy_world.sampling.guidance), got {type(runner).__name__}"
            )
        self._runner = runner

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path = "tiny",
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        fp8: bool = False,
    ) -> FantasyWorldPipeline:
        """Load a named config (``tiny``) or a model folder; device/dtype default to CUDA+bf16 or CPU+fp32.

        ``fp8=True`` runs the DiT and geometry-branch linears in FP8 (``fantasy_world.quant``; README "FP8
        mode"): FP8 GEMMs on sm89+ GPUs, an exact emulation on the CPU. Best with regional compile.
        """
        from fantasy_world.utils.runtime import check_fp8, pick_device, pick_dtype

        dev = pick_device(device)
        dt = pick_dtype(dev, dtype)
        check_fp8(fp8, dev)
        loaded = load_model(name_or_path, device=dev, dtype=dt, fp8=fp8)
        return cls(loaded, dev, dt)

    @property
    def is_image_model(self) -> bool:
        return self.model.cfg.dit.image_input

    # ------------------------------------------------------------------ conditioning
    def encode_prompt(self, prompt: str) -> torch.Tensor:
        """[1, L, D] text features; cached by prompt (the negative prompt is encoded once per process)."""
        if prompt not in self._prompt_cache:
            if len(self._prompt_cache) > 32:
                self._prompt_cache.clear()
            with torch.no_grad():
                feats = self.text_encoder.encode([prompt], device=self.device)
            self._prompt_cache[prompt] = feats.to(self.dtype)
        return self._prompt_cache[prompt]

    def camera_trajectory(
        self, camera: CameraSource, frames: int, height: int, width: int
    ) -> CameraTrajectory:
        """A preset name, camera file, :class:`CameraPath` or :class:`CameraTrajectory` → ``frames`` cameras.

        The same resolver as the CLI and the studio (:func:`fantasy_world.camera.resolve_camera`).
        """
        return resolve_camera(camera, frames, width, height)

    def _image_conditioning(
        self, image: torch.Tensor, frames: int, height: int, width: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CLIP tokens and Wan's 20-channel ``y`` (4-ch first-frame mask ‖ VAE latent of image + grey frames)."""
        assert self.image_encoder is not None
        img = image.to(self.device, torch.float32)
        with torch.no_grad():
            clip_fea = self.image_encoder.encode(img[None]).to(self.dtype)
            video = torch.zeros(1, 3, frames, height, width, device=self.device)
            video[:, :, 0] = img
            latent = self.vae.encode(video.to(self.vae_dtype))
        lat_f, lat_h, lat_w = latent.shape[2:]
        mask = torch.zeros(1, frames + 3, lat_h, lat_w, device=self.device)
        mask[:, :4] = 1.0  # the first frame's mask is repeated 4x so frames group as 1+4k
        mask = mask.view(1, lat_f, 4, lat_h, lat_w).transpose(1, 2)
        y = torch.cat([mask, latent.float()], dim=1).to(self.dtype)
        return clip_fea, y

    @property
    def vae_dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    # ------------------------------------------------------------------ generation
    @_recover_from_oom
    @torch.no_grad()
    def __call__(
        self,
        prompt: str,
        camera: CameraSource = "orbit",
        image: Any = None,
        *,
        negative_prompt: str | None = None,
        seed: int = 0,
        steps: int | None = None,
        guidance: float | None = None,
        frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        shift: float | None = None,
        scene_scale: float = 1.0,
        preview_every: int = 0,
        on_step: Callable[[StepInfo], None] | None = None,
        cancel: CancelFlag = None,
        fps: float | None = None,
    ) -> WorldResult:
        """Generate one world; every argument is validated with a one-line error.

        The result and the bundle it writes are described in docs/ARCHITECTURE.md.
        """
        d = self.defaults
        prompt = check_prompt(prompt)
        negative_prompt = check_prompt(
            d.negative_prompt if negative_prompt is None else negative_prompt,
            "negative_prompt",
            allow_empty=True,
        )
        seed = check_seed(seed)
        steps = check_steps(d.steps if steps is None else steps)
        guidance = check_guidance(d.guidance if guidance is None else guidance)
        frames = check_frames(d.frames if frames is None else frames, self.loaded.limits(self.device))
        height, width = check_size(
            d.height if height is None else height,
            d.width if width is None else width,
            self.loaded.limits(self.device),
        )
        if not (isinstance(preview_every, int) and preview_every >= 0):
            raise InputError(
                f"preview_every={preview_every!r}: expected 0 (off) or a positive number of steps"
            )
        if not (isinstance(scene_scale, (int, float)) and np.isfinite(scene_scale) and scene_scale > 0):
            raise InputError(
                f"scene_scale={scene_scale!r}: expected a positive number (scene units per path unit)"
            )
        if image is not None and not self.is_image_model:
            raise InputError(
                f"image: model {self.name!r} is text-to-world; a start image needs an image-to-world model"
            )
        if image is None and self.is_image_model:
            raise InputError(f"image: model {self.name!r} is image-to-world; give a start image")

        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        traj = self.camera_trajectory(camera, frames, height, width).relative_to_first()
        c2w_req = traj.c2w.copy()
        c2w_req[:, :3, 3] /= float(scene_scale)
        plucker = plucker_rays(
            c2w_req,
            traj.intrinsics,
            height,
            width,
            official_double_scaled=self.model.cfg.plucker_mode == "official",
        )
        plucker = torch.as_tensor(plucker, dtype=self.dtype, device=self.device)[None]
        camera_feat = self.model.encode_camera(plucker)

        cond = self.encode_prompt(prompt)
        uncond = self.encode_prompt(negative_prompt) if guidance != 1.0 else None
        clip_fea = y = None
        if image is not None:
            img = _image_to_tensor(image, height, width)
            clip_fea, y = self._image_conditioning(img, frames, height, width)
        timings["conditioning"] = time.perf_counter() - t0

        lat_shape = (1, self.vae.cfg.z_dim, (frames - 1) // 4 + 1, height // 8, width // 8)
        latents = seeded_noise(lat_shape, seed, self.device, torch.float32)
        schedule = flow_match_schedule(steps, shift=d.shift if shift is None else shift)
        inputs = PassInputs(cond, uncond, (height, width), camera=camera_feat, clip_fea=clip_fea, y=y)
        t1 = time.perf_counter()

        def step_done(i: int, step_geometry: Any) -> None:
            preview = None
            if step_geometry is not None and i < steps - 1:
                preview = GeometryPreview(**vars(read_geometry(step_geometry, height, width)), step=i + 1)
            if on_step is not None:
                on_step(
                    StepInfo(i + 1, steps, float(schedule.timesteps[i]), time.perf_counter() - t1, preview)
                )

        latents, geometry = sample(
            self.model,
            self.guidance_runner,
            schedule,
            latents,
            inputs,
            guidance=guidance,
            dtype=self.dtype,
            preview_every=preview_every,
            on_step=step_done,
            cancelled=lambda: _cancelled(cancel),
        )
        timings["denoise"] = time.perf_counter() - t1

        t2 = time.perf_counter()
        video = self.vae.decode(latents.to(self.vae_dtype), tiled=self.loaded.tiled_decode)[0]
        images = _as_uint8_video(video)
        timings["decode"] = time.perf_counter() - t2

        predicted = read_geometry(geometry, height, width)
        timings["total"] = time.perf_counter() - t0
        meta = self._meta(
            prompt, negative_prompt, seed, steps, guidance, frames, height, width, camera, scene_scale
        )
        return WorldResult(
            images=images,
            **vars(predicted),
            requested_c2w=c2w_req.astype(np.float32),
            fps=float(d.fps if fps is None else fps),
            meta=meta,
            requested_intrinsics=traj.intrinsics.astype(np.float32),
            timings=timings,
        )

    @_recover_from_oom
    @torch.no_grad()
    def reconstruct(
        self, video: np.ndarray, *, prompt: str = "", noise_step: int | None = None, fps: float = 16.0
    ) -> WorldResult:
        """Geometry of an existing video: the geometry branch on its clean latents at the lowest noise level.

        ``video`` is uint8 [T, H, W, 3] with T = 1+4k and H, W multiples of 16. The camera branch gets no
        input (zero Plücker features, which the adapters skip), so only the video drives the geometry.
        """
        if (
            not isinstance(video, np.ndarray)
            or video.dtype != np.uint8
            or video.ndim != 4
            or video.shape[-1] != 3
        ):
            raise InputError("video: expected a uint8 array [T, H, W, 3]")
        frames = check_frames(int(video.shape[0]), self.loaded.limits(self.device))
        height, width = check_size(int(video.shape[1]), int(video.shape[2]), self.loaded.limits(self.device))
        if self.is_image_model:
            raise InputError(f"reconstruct: model {self.name!r} is image-to-world; use a text-to-world model")
        t0 = time.perf_counter()
        vid = torch.from_numpy(video).to(self.device).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0
        latents = self.vae.encode(vid.to(self.vae_dtype)).float()
        steps = self.defaults.steps
        schedule = flow_match_schedule(steps, shift=self.defaults.shift)
        index = steps - 1 if noise_step is None else noise_step
        noise = seeded_noise(tuple(latents.shape), 0, self.device)
        x = schedule.add_noise(latents, noise, index).to(self.dtype)
        t = schedule.timesteps[index : index + 1].to(self.device, torch.float32)
        cond = self.encode_prompt(prompt if prompt.strip() else self.defaults.reconstruct_prompt)
        out = self.model(x, t, cond, camera=None, return_geometry=True, image_hw=(height, width))
        predicted = read_geometry(out.geometry, height, width)
        timings = {"total": time.perf_counter() - t0}
        meta = {"mode": "reconstruct", "model": self.name, "frames": frames, "height": height, "width": width}
        # With no requested path, the predicted cameras stand in for it.
        return WorldResult(
            images=video,
            **vars(predicted),
            requested_c2w=predicted.cam_c2w.copy(),
            fps=fps,
            meta=meta,
            timings=timings,
        )

    def _meta(
        self, prompt, negative_prompt, seed, steps, guidance, frames, height, width, camera, scene_scale
    ) -> dict:
        cam = camera if isinstance(camera, (str, Path)) else type(camera).__name__
        return {
            "prompt": prompt,
            "negative_prompt": negative_prompt,
            "seed": seed,
            "model": self.name,
            "model_trained": self.loaded.trained,
            "steps": steps,
            "guidance": guidance,
            "frames": frames,
            "height": height,
            "width": width,
            "camera": str(cam),
            "scene_scale": scene_scale,
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "fp8": is_quantized(self.model),
            "versions": package_versions(),
        }
