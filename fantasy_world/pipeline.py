"""Text/image + camera path → video, depth, point maps and cameras, in one diffusion pass.

The pipeline owns the frozen encoders (text, optional CLIP image tower, VAE) and a
:class:`~fantasy_world.models.fantasy.model.FantasyWorldModel`. One call validates the request, turns the
camera path into Plücker maps (encoded once per model, reused every step), runs flow-matching sampling
with classifier-free guidance, reads geometry out of the conditional pass at the last step (and optionally
every K steps as a live preview), decodes the video and returns a :class:`WorldResult`.

Two-expert models (Wan2.2-Fun-A14B) run through the same call: each step's expert is chosen by the
official rule (high while the bf16 model timestep is > 900), the inactive expert stays in host memory
(:class:`~fantasy_world.models.fantasy.expert_residency.ExpertResidency`, one move at the switch), each
expert encodes the camera with its own control adapter, and previews and the final geometry come from the
low expert only. Such models take a first and an optional last frame (``end_image``), without CLIP.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fantasy_world.accel.compile import compile_blocks, compiled_blocks, uncompile_blocks
from fantasy_world.accel.encoders import HostResident, on_device
from fantasy_world.camera import CameraSource, CameraTrajectory, plucker_rays, resolve_camera
from fantasy_world.errors import FantasyWorldError, GenerationCancelled, InputError, OutOfMemory
from fantasy_world.geometry import WorldData
from fantasy_world.model_folder import LoadedModel, load_model
from fantasy_world.models.fantasy.image_condition import conditioning_mask, conditioning_video
from fantasy_world.models.wan.attention import attention_kernel
from fantasy_world.quant.selection import is_quantized, set_fp8_attention
from fantasy_world.readout import PredictedGeometry, read_geometry
from fantasy_world.sampling import flow_match_schedule, seeded_noise
from fantasy_world.sampling.guidance import GuidanceRunner, SequentialGuidance
from fantasy_world.sampling.sampler import PassInputs, StepModel, geometry_steps, sample
from fantasy_world.utils.host_copy import to_numpy
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

    step: int  # 1-based index of the finished step (0 for a notice before the first step)
    total: int
    timestep: float
    elapsed_s: float
    preview: GeometryPreview | None = None
    # "denoising" after a step. Notices before the steps (step 0): "compiling" before the first run of a
    # compiled model at a size (its first step then takes the compilation time); "eager" when that
    # compilation failed and the steps restart eagerly.
    phase: str = "denoising"
    message: str = ""
    expert: str | None = None  # two-expert models: which expert ran the step


PROMPT_CACHE_SIZE = 32  # encoded prompts kept per pipeline (the negative prompt is one of them)
COMPILING_MESSAGE = "compiling (once)"
EAGER_FALLBACK_MESSAGE = "compilation failed; running eagerly (restarting the steps)"


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
    return to_numpy(v.permute(1, 2, 3, 0).contiguous())


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
        self._image_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self._runner: GuidanceRunner = SequentialGuidance()
        self._warm: set[tuple] = set()  # sizes the compiled blocks have already run at
        self._text_home: HostResident | None = None  # set while the encoders live on the host
        self._image_home: HostResident | None = None

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
        *,
        compile: bool = True,
        keep_encoders: bool | None = None,
        fp8: bool = False,
        fp8_attention: bool = False,
    ) -> FantasyWorldPipeline:
        """Load a named config (``tiny``) or a model folder; device/dtype default to CUDA+bf16 or CPU+fp32.

        ``compile`` (CUDA only; ignored on a CPU): regional ``torch.compile`` of the model's repeated
        blocks; the first run at each size compiles (``StepInfo.phase == "compiling"``), and a failed
        compilation falls back to eager with a logged warning. ``keep_encoders``: keep the text and image
        encoders on the card; by default (None) they leave a CUDA card once used and stay put on a CPU.
        ``fp8=True`` runs the DiT and geometry-branch linears in FP8 (``fantasy_world.quant``; README "FP8
        mode"): FP8 GEMMs on sm89+ GPUs, an exact emulation on the CPU. ``fp8_attention=True`` (implies
        ``fp8``) also runs the long attention calls in FP8 where FlashAttention-3 runs (opt-in: faster, but
        a larger error; ``fantasy_world.quant.selection``).
        """
        from fantasy_world.utils.runtime import check_fp8, pick_device, pick_dtype

        fp8 = fp8 or fp8_attention
        dev = pick_device(device)
        dt = pick_dtype(dev, dtype)
        check_fp8(fp8, dev)
        loaded = load_model(name_or_path, device=dev, dtype=dt, fp8=fp8)
        pipe = cls(loaded, dev, dt)
        if fp8_attention:
            for model in pipe._denoisers():
                set_fp8_attention(model, True)
        if not (keep_encoders if keep_encoders is not None else dev.type != "cuda"):
            pipe.offload_encoders()
        if compile:
            pipe.enable_compile()
        return pipe

    # ------------------------------------------------------------------ speed and memory switches
    def _denoisers(self) -> list[torch.nn.Module]:
        """The models that run the steps: both experts of a two-expert model, else the one model."""
        experts = self.loaded.experts
        return list(experts.experts.values()) if experts is not None else [self.model]

    @property
    def compiled(self) -> bool:
        """True while the model's repeated blocks are compiled (``enable_compile``)."""
        return all(compiled_blocks(m) for m in self._denoisers())

    def enable_compile(self, **options: Any) -> bool:
        """Regional ``torch.compile`` of the model's blocks on CUDA; a no-op on a CPU. Returns whether on.

        Block swapping wins over compilation (``fantasy_world.accel.compile``); a model with block
        swapping attached stays eager, with a logged warning.
        """
        if self.device.type != "cuda":
            log.debug("compile: skipped on %s (CUDA only)", self.device)
            return False
        if self.compiled:
            return True
        try:
            n = sum(compile_blocks(m, **options) for m in self._denoisers() if not compiled_blocks(m))
        except (InputError, TypeError) as exc:
            log.warning("compile: staying eager (%s)", exc)
            return False
        self._warm.clear()
        log.info("compile: %d blocks compile on the first run at each size", n)
        return True

    def disable_compile(self) -> None:
        """Run the blocks eagerly again."""
        for m in self._denoisers():
            uncompile_blocks(m)
        self._warm.clear()

    def offload_encoders(self) -> None:
        """Text and image encoders live in (pinned) host memory and visit the card only when used; the
        text encoder's layers stream through one at a time (``fantasy_world.accel.encoders``)."""
        if self._text_home is None:
            self._text_home = HostResident(self.text_encoder, self.device, stream_blocks=True)
        if self.image_encoder is not None and self._image_home is None:
            self._image_home = HostResident(self.image_encoder, self.device)
        _release_memory(self.device)

    def keep_encoders(self) -> None:
        """Undo :meth:`offload_encoders`: both encoders stay on the card."""
        for home in (self._text_home, self._image_home):
            if home is not None:
                home.restore()
        self._text_home = self._image_home = None

    @property
    def encoders_offloaded(self) -> bool:
        return self._text_home is not None

    @property
    def is_image_model(self) -> bool:
        """Image-to-world: a start image is required."""
        return self.model.cfg.takes_image

    @property
    def accepts_end_image(self) -> bool:
        """First- and last-frame conditioning (Wan2.2-Fun): an optional ``end_image`` is accepted."""
        return self.model.cfg.takes_end_image

    # ------------------------------------------------------------------ conditioning
    def encode_prompt(self, prompt: str) -> torch.Tensor:
        """[1, L, D] text features; cached by prompt (the negative prompt is encoded once per process)."""
        return self._encode_prompts(prompt, None)[0]

    def _encode_prompts(self, prompt: str, negative: str | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Both prompts' features; the text encoder visits the card at most once for the pair.

        Prompts not in the cache are encoded as one batch: with the encoder's layers streamed from host
        memory (umT5-XXL, 11 GB), each encode call copies every layer to the card again, so the prompt and
        the negative prompt together cost one pass over the weights, not two.
        """
        wanted = [p for p in (prompt, negative) if p is not None]
        need = list(dict.fromkeys(p for p in wanted if p not in self._prompt_cache))
        if need:
            if len(self._prompt_cache) + len(need) > PROMPT_CACHE_SIZE:
                keep = {p: self._prompt_cache[p] for p in wanted if p in self._prompt_cache}
                self._prompt_cache.clear()
                self._prompt_cache.update(keep)
            with torch.no_grad(), on_device(self._text_home):
                feats = self.text_encoder.encode(need, device=self.device)
            for i, p in enumerate(need):
                self._prompt_cache[p] = feats[i : i + 1].to(self.dtype)
        cond = self._prompt_cache[prompt]
        return cond, None if negative is None else self._prompt_cache[negative]

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
        """CLIP tokens and Wan's 20-channel ``y`` (4-ch first-frame mask ‖ VAE latent of image + grey frames).

        Cached by the image's pixels and the video size, so a repeated start image needs neither the
        image encoder nor the VAE encoder again.
        """
        assert self.image_encoder is not None
        key = (hashlib.sha256(image.float().numpy().tobytes()).hexdigest(), frames, height, width)
        if key in self._image_cache:
            return self._image_cache[key]
        if len(self._image_cache) >= 4:
            self._image_cache.pop(next(iter(self._image_cache)))
        img = image.to(self.device, torch.float32)
        with torch.no_grad(), on_device(self._image_home):
            clip_fea = self.image_encoder.encode(img[None]).to(self.dtype)
        with torch.no_grad():
            video = torch.zeros(1, 3, frames, height, width, device=self.device)
            video[:, :, 0] = img
            latent = self.vae.encode(video.to(self.vae_dtype))
        lat_f, lat_h, lat_w = latent.shape[2:]
        mask = torch.zeros(1, frames + 3, lat_h, lat_w, device=self.device)
        mask[:, :4] = 1.0  # the first frame's mask is repeated 4x so frames group as 1+4k
        mask = mask.view(1, lat_f, 4, lat_h, lat_w).transpose(1, 2)
        y = torch.cat([mask, latent.float()], dim=1).to(self.dtype)
        self._image_cache[key] = (clip_fea, y)
        return clip_fea, y

    def _first_last_conditioning(
        self, first: torch.Tensor, last: torch.Tensor | None, frames: int
    ) -> torch.Tensor:
        """Wan2.2-Fun's 20-channel ``y``: mask (1 on the first and, if given, the last frame) ‖ VAE latent of
        (first image, grey frames, last image). No CLIP tokens."""
        video = conditioning_video(
            first.to(self.device, torch.float32),
            frames,
            None if last is None else last.to(self.device, torch.float32),
        )
        with torch.no_grad():
            latent = self.vae.encode(video.to(self.vae_dtype))
        lat_h, lat_w = latent.shape[3:]
        mask = conditioning_mask(frames, lat_h, lat_w, last_frame=last is not None, device=self.device)
        return torch.cat([mask, latent.float()], dim=1).to(self.dtype)

    @property
    def vae_dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    def _tile_decode(self, latents: torch.Tensor) -> bool:
        """Tile the VAE decode of a tiling model only when an untiled decode might not fit the card.

        Why: tiles overlap, so tiling multiplies the decoder's work (3× at 336×592) to bound its memory;
        with the denoiser's activations freed there is usually room for the untiled decode.
        """
        if not self.loaded.tiled_decode or self.device.type != "cuda":
            return self.loaded.tiled_decode
        need = self.vae.untiled_decode_bytes(*latents.shape[-2:])
        free, _ = torch.cuda.mem_get_info(self.device)
        spare = free + torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
        tiled = 1.25 * need > spare
        log.info(
            "VAE decode %s (needs ~%.1f GiB untiled, %.1f GiB spare)",
            "tiled" if tiled else "untiled",
            need / 2**30,
            spare / 2**30,
        )
        return tiled

    # ------------------------------------------------------------------ generation
    @_recover_from_oom
    @torch.no_grad()
    def __call__(
        self,
        prompt: str,
        camera: CameraSource = "orbit",
        image: Any = None,
        *,
        end_image: Any = None,
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
        step_window: tuple[int, int] | None = None,
    ) -> WorldResult:
        """Generate one world; every argument is validated with a one-line error.

        ``end_image`` (models with first/last-frame conditioning, see :attr:`accepts_end_image`) is the last
        video frame. ``step_window = (a, b)`` runs only steps a..b-1 of the schedule from the seeded noise:
        for benchmarks (memory, expert switch), not for pictures. The result and the bundle it writes are
        described in docs/ARCHITECTURE.md.
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
        if end_image is not None and not self.accepts_end_image:
            raise InputError(
                f"end_image: model {self.name!r} takes no end image; only first/last-frame models "
                "(wan2.2-fun-a14b) do"
            )
        if step_window is not None:
            ok = (
                isinstance(step_window, (tuple, list))
                and len(step_window) == 2
                and all(isinstance(v, int) for v in step_window)
                and 0 <= step_window[0] < step_window[1] <= steps
            )
            if not ok:
                raise InputError(
                    f"step_window={step_window!r}: expected (first, stop) with 0 <= first < stop <= steps={steps}"
                )
            step_window = (int(step_window[0]), int(step_window[1]))

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
        residency = self.loaded.experts
        # one model: its camera features now; two experts: each expert's, once it is on the device
        camera_feat = self.model.encode_camera(plucker) if residency is None else None

        cond, uncond = self._encode_prompts(prompt, negative_prompt if guidance != 1.0 else None)
        clip_fea = y = None
        if image is not None and self.accepts_end_image:
            img = _image_to_tensor(image, height, width)
            end = None if end_image is None else _image_to_tensor(end_image, height, width)  # RGB, like img
            y = self._first_last_conditioning(img, end, frames)
        elif image is not None:
            img = _image_to_tensor(image, height, width)
            clip_fea, y = self._image_conditioning(img, frames, height, width)
        timings["conditioning"] = time.perf_counter() - t0

        lat_shape = (1, self.vae.cfg.z_dim, (frames - 1) // 4 + 1, height // 8, width // 8)
        latents = seeded_noise(lat_shape, seed, self.device, torch.float32)
        schedule = flow_match_schedule(steps, shift=d.shift if shift is None else shift)
        inputs = PassInputs(cond, uncond, (height, width), camera=camera_feat, clip_fea=clip_fea, y=y)
        last_step = (step_window[1] if step_window else steps) - 1
        experts_ran: list[str] = []
        select = geometry_at = None
        switches_before = 0
        if residency is not None:
            table = residency.table
            plan = table.plan(schedule.timesteps)
            table.switch_step(schedule.timesteps)  # high then low, or an error
            # previews only where the low expert runs: officially only its heads are ever read (last step)
            geometry_at = [
                want and (i == last_step or plan[i] == table.low)
                for i, want in enumerate(geometry_steps(steps, preview_every))
            ]
            cameras: dict[str, torch.Tensor] = {}
            switches_before = len(residency.switches)

            def select(i: int, t: torch.Tensor) -> StepModel:
                name, model = residency.for_timestep(t)
                if name not in cameras:  # each expert's own control adapter
                    cameras[name] = model.encode_camera(plucker)
                experts_ran.append(name)
                return StepModel(model, cameras[name])

        t1 = time.perf_counter()

        def step_done(i: int, step_geometry: Any) -> None:
            preview = None
            if step_geometry is not None and i < last_step:
                preview = GeometryPreview(**vars(read_geometry(step_geometry, height, width)), step=i + 1)
            if on_step is not None:
                on_step(
                    StepInfo(
                        i + 1,
                        steps,
                        float(schedule.timesteps[i]),
                        time.perf_counter() - t1,
                        preview,
                        expert=experts_ran[-1] if experts_ran else None,
                    )
                )

        def denoise() -> tuple[torch.Tensor, Any]:
            experts_ran.clear()  # a compile fallback restarts the steps
            # one model: its steps reuse the context keys/values and camera projections (step_invariants.py);
            # two experts swap on and off the card, so nothing of theirs is kept between steps
            reuse = self.model.step_invariants() if residency is None else contextlib.nullcontext()
            try:
                with reuse:
                    return sample(
                        None if residency is not None else self.model,
                        self.guidance_runner,
                        schedule,
                        latents.clone(),
                        inputs,
                        guidance=guidance,
                        dtype=self.dtype,
                        preview_every=preview_every,
                        on_step=step_done,
                        cancelled=lambda: _cancelled(cancel),
                        select=select,
                        geometry_at=geometry_at,
                        window=step_window,
                    )
            finally:
                if residency is not None:
                    residency.release()  # the next generation starts with the high expert; free the card

        def notify(phase: str, message: str) -> None:
            if on_step is not None:
                on_step(StepInfo(0, steps, float(schedule.timesteps[0]), 0.0, phase=phase, message=message))

        size_key = ("generate", lat_shape, image is not None, guidance != 1.0)
        latents, geometry = self._compiled_run(size_key, denoise, notify)
        timings["denoise"] = time.perf_counter() - t1

        t2 = time.perf_counter()
        tiled = self._tile_decode(latents)
        video = self.vae.decode(latents.to(self.vae_dtype), tiled=tiled)[0]
        images = _as_uint8_video(video)
        timings["decode"] = time.perf_counter() - t2

        predicted = read_geometry(geometry, height, width)
        timings["total"] = time.perf_counter() - t0
        meta = self._meta(
            prompt, negative_prompt, seed, steps, guidance, frames, height, width, camera, scene_scale
        )
        meta["vae_tiled"] = tiled
        if self.accepts_end_image:
            meta["end_image"] = end_image is not None
        if step_window is not None:
            meta["step_window"] = list(step_window)
        if residency is not None:
            meta["experts"] = experts_ran
            meta["geometry_expert"] = experts_ran[-1]
            meta["expert_boundary"] = residency.table.boundary
            meta["expert_switches"] = [
                {"from": r.offloaded, "to": r.loaded, "seconds": round(r.seconds, 4), "bytes": r.bytes_moved}
                for r in residency.switches[switches_before:]
            ]
        if d.point_conf_above is not None:
            meta["point_conf_above"] = d.point_conf_above  # the bundle's point filter default for this model
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
        out = self._compiled_run(
            ("reconstruct", tuple(x.shape)),
            lambda: self.model(x, t, cond, camera=None, return_geometry=True, image_hw=(height, width)),
        )
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

    def _compiled_run(
        self, key: tuple, run: Callable[[], Any], notify: Callable[[str, str], None] | None = None
    ) -> Any:
        """``run()``. On the first run of a compiled model at a size, ``notify("compiling", ...)`` first;
        if compiling fails, log a warning, ``notify("eager", ...)``, go eager and run again."""
        if not self.compiled or key in self._warm:
            return run()
        if notify is not None:
            notify("compiling", COMPILING_MESSAGE)
        log.info("%s: the first run at this size compiles the model's blocks", COMPILING_MESSAGE)
        try:
            out = run()
        except (torch.OutOfMemoryError, GenerationCancelled, FantasyWorldError, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - any compiler failure: the eager model still works
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            log.warning("compile failed (%s); running eagerly from now on", reason)
            self.disable_compile()
            if notify is not None:
                notify("eager", EAGER_FALLBACK_MESSAGE)
            return run()
        self._warm.add(key)
        return out

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
            "fp8_attention": any(getattr(m, "fp8_attention", False) for m in self.model.modules()),
            "attention": attention_kernel(self.device),
            "versions": package_versions(),
        }
