"""Model folders: what ``FantasyWorldPipeline.from_pretrained`` accepts and how our own models are stored.

Three sources are understood:

* ``"tiny"`` — the bundled model: ``checkpoints/fantasyworld-tiny/`` in a checkout, the package data
  ``fantasy_world/bundled_tiny/`` once installed (``setup.py``). Missing, it is a :class:`CheckpointError`;
  random weights never stand in for it.
* our own folder — ``fantasyworld.json`` (format, version, full typed configs, generation defaults) plus
  ``model.safetensors`` (FantasyWorld model incl. the Wan DiT) and ``vae.safetensors``.
* an official FantasyWorld-Wan2.1-I2V-14B-480P folder — ``model.pth`` next to the Wan2.1-I2V-14B-480P
  files (directly or in a ``Wan2.1-I2V-14B-480P/`` sub-folder);
* an official FantasyWorld-Wan2.2-Fun-A14B-Control-Camera folder — ``high_noise_model.pth`` and
  ``low_noise_model.pth`` next to the Wan2.2-Fun-A14B-Control-Camera release and the reward LoRAs (layout
  in the README, resolved by :func:`~fantasy_world.models.fantasy.official_wan22.resolve_wan22_folder`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fantasy_world.checkpoints import load_into_model, read_state_dict
from fantasy_world.checkpoints.sharding import save_sharded, weights_path
from fantasy_world.errors import CheckpointError
from fantasy_world.models.fantasy.config import FantasyWorldConfig, fantasy_world_config
from fantasy_world.models.fantasy.expert_residency import ExpertResidency
from fantasy_world.models.fantasy.model import FantasyWorldModel
from fantasy_world.models.wan.text_encoder import TextEncoder, load_text_encoder
from fantasy_world.models.wan.umt5 import UMT5_PRESETS, UMT5Config
from fantasy_world.models.wan.vae import WanVAE, WanVAEConfig, wan_vae_config
from fantasy_world.quant.fp8_files import pick_wan_dit_source
from fantasy_world.quant.fp8_linear import FP8_DTYPES
from fantasy_world.quant.fp8_state import FP8_FORMAT, fp8_metadata, fp8_state_dict
from fantasy_world.quant.fp8_state import METADATA_KEY as FP8_METADATA_KEY
from fantasy_world.quant.selection import dequantize_model, is_quantized, quantize_model
from fantasy_world.utils.dataclass_io import config_from_dict, config_to_dict
from fantasy_world.validation import SizeLimits

log = logging.getLogger(__name__)

FOLDER_FORMAT = "fantasyworld-studio-model"
FOLDER_VERSION = 1
CONFIG_FILE = "fantasyworld.json"
MODEL_FILE = "model.safetensors"
VAE_FILE = "vae.safetensors"
REPO_CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
TINY_DIR = REPO_CHECKPOINTS / "fantasyworld-tiny"  # in a checkout
INSTALLED_TINY_DIR = Path(__file__).resolve().parent / "bundled_tiny"  # package data of an installed package
WAN_I2V_DIRNAME = "Wan2.1-I2V-14B-480P"
_FP8_SHARD = 4 * 1024**3  # FP8 folders are for big models: 4 GiB shards (one 14B FFN weight is 70 MB)


@dataclass(frozen=True)
class GenerationDefaults:
    """Settings a model generates with when the caller gives none."""

    frames: int = 17
    height: int = 128
    width: int = 192
    steps: int = 10
    guidance: float = 4.0
    shift: float = 5.0
    fps: float = 16.0
    negative_prompt: str = ""
    reconstruct_prompt: str = "a scene"
    max_pixels_cpu: int = 256 * 384
    max_pixels_cuda: int = 1280 * 720
    # the exported point cloud keeps pixels with depth_conf strictly above this (None: no absolute filter)
    point_conf_above: float | None = None


TINY_DEFAULTS = GenerationDefaults()
OFFICIAL_I2V_DEFAULTS = GenerationDefaults(
    frames=81,
    height=336,
    width=592,
    steps=50,
    guidance=5.0,
    max_pixels_cpu=336 * 592,
    max_pixels_cuda=720 * 1280,
)
# inference_wan22.py: 480x832, 81 frames, 50 steps, CFG 5, shift 5, empty negative prompt, PLY depth_conf > 1.5
WAN22_DEFAULTS = GenerationDefaults(
    frames=81,
    height=480,
    width=832,
    steps=50,
    guidance=5.0,
    shift=5.0,
    negative_prompt="",
    max_pixels_cpu=480 * 832,
    max_pixels_cuda=720 * 1280,
    point_conf_above=1.5,
)


@dataclass
class LoadedModel:
    """Everything a pipeline needs, already on its device."""

    name: str
    model: FantasyWorldModel
    vae: WanVAE
    text_encoder: TextEncoder
    image_encoder: nn.Module | None
    defaults: GenerationDefaults
    trained: bool
    tiled_decode: bool = False
    # two-expert models (Wan2.2-Fun-A14B): both experts, one on the device at a time; ``model`` is the low
    # expert then (its config is the model's config; the pipeline runs the experts through this)
    experts: ExpertResidency | None = field(default=None)

    def limits(self, device: torch.device) -> SizeLimits:
        cap = self.defaults.max_pixels_cuda if device.type == "cuda" else self.defaults.max_pixels_cpu
        return SizeLimits(max_pixels=cap)


def tiny_folder() -> Path:
    """The bundled tiny model's folder (installed package data first, then the checkout), or a clear error."""
    for folder in (INSTALLED_TINY_DIR, TINY_DIR):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise CheckpointError(
        f"model 'tiny': the bundled model is missing (looked for {CONFIG_FILE} in {INSTALLED_TINY_DIR} and "
        f"{TINY_DIR}); install the package from a full clone (`pip install .`) or pass a model folder"
    )


def read_folder_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{folder}: not a model folder (expected {CONFIG_FILE} in it)") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FOLDER_FORMAT:
        raise CheckpointError(f'{path}: expected "format": "{FOLDER_FORMAT}"')
    if meta.get("version") != FOLDER_VERSION:
        raise CheckpointError(
            f"{path}: folder version {meta.get('version')!r}; this release reads version {FOLDER_VERSION}"
        )
    for key in ("model", "vae"):
        if key not in meta:
            raise CheckpointError(f"{path}: missing the {key!r} config")
    return meta


def load_our_folder(folder: Path, device: torch.device, dtype: torch.dtype, fp8: bool = False) -> LoadedModel:
    """Our folder; FP8 weights (``"quantization"`` in the config) stay FP8 with ``fp8``, else are dequantised."""
    meta = read_folder_config(folder)
    text_meta = meta.get("text_encoder") or {}
    model_dict = meta["model"]
    if isinstance(model_dict, dict) and "text_encoder" not in model_dict and "kind" in text_meta:
        # Folders written before the model config named its text encoder keep it only at the top level.
        model_dict = {**model_dict, "text_encoder": text_meta["kind"]}
    cfg = config_from_dict(FantasyWorldConfig, model_dict, "model")
    vae_cfg = config_from_dict(WanVAEConfig, meta["vae"], "vae")
    defaults = config_from_dict(GenerationDefaults, meta.get("defaults", {}), "defaults")
    model_file, vae_file = weights_path(folder, MODEL_FILE), weights_path(folder, VAE_FILE)
    with torch.device("meta"):
        model = FantasyWorldModel(cfg)
        vae = WanVAE(vae_cfg)
    stored_fp8 = meta.get(FP8_METADATA_KEY) == FP8_FORMAT
    quantize_model(model, fp8 or stored_fp8)
    load_into_model(model, read_state_dict(model_file), source=str(model_file), dtype=dtype)
    if stored_fp8 and not fp8:
        log.info("%s: FP8 weights dequantised to %s (pass fp8=True to keep FP8 layers)", folder, dtype)
        dequantize_model(model)
    load_into_model(vae, read_state_dict(vae_file), source=str(vae_file), dtype=torch.float32)
    text = load_text_encoder(cfg.text_encoder, text_meta.get("path"), device, torch.float32)
    return LoadedModel(
        name=str(meta.get("name", folder.name)),
        model=model.to(device=device, dtype=dtype).eval(),
        vae=vae.to(device=device).eval(),
        text_encoder=text,
        image_encoder=None,
        defaults=defaults,
        trained=bool(meta.get("trained", True)),
    )


def save_our_folder(
    folder: str | Path,
    name: str,
    model: FantasyWorldModel,
    vae: WanVAE,
    defaults: GenerationDefaults = TINY_DEFAULTS,
    *,
    trained: bool = True,
    weight_dtype: torch.dtype | None = None,
    extra: dict[str, Any] | None = None,
    fp8: bool = False,
) -> Path:
    """Write a model folder that :func:`load_model` reads back (safetensors + typed JSON config).

    ``fp8`` stores the FP8-mode layers as e4m3 weights + per-channel fp32 scales (``fantasy_world.quant``;
    the 14B DiT then takes ~17 GB); a model that is already quantised is written bit for bit.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def cast(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if weight_dtype is None:
            return state
        return {
            k: v.to(weight_dtype) if v.is_floating_point() and not _keeps_dtype(k, v) else v
            for k, v in state.items()
        }

    if fp8 or is_quantized(model):
        save_sharded(
            cast(fp8_state_dict(model)),
            folder,
            MODEL_FILE,
            max_shard_bytes=_FP8_SHARD,
            metadata=fp8_metadata(),
        )
    else:
        save_sharded(cast(model.state_dict()), folder, MODEL_FILE)
    save_sharded(cast(vae.state_dict()), folder, VAE_FILE)
    meta = {
        "format": FOLDER_FORMAT,
        "version": FOLDER_VERSION,
        "name": name,
        "trained": trained,
        "model": config_to_dict(model.cfg),
        "vae": config_to_dict(vae.cfg),
        "text_encoder": {"kind": model.cfg.text_encoder},
        "defaults": config_to_dict(defaults),
        **({FP8_METADATA_KEY: FP8_FORMAT} if fp8 or is_quantized(model) else {}),
        **(extra or {}),
    }
    (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
    return folder


def _keeps_dtype(key: str, tensor: torch.Tensor) -> bool:
    """FP8 weights and their fp32 scales are never cast (a cast would drop the scale or round it)."""
    return tensor.dtype in FP8_DTYPES or key.endswith(".weight_scale")


def _official_wan_dir(folder: Path) -> Path:
    sub = folder / WAN_I2V_DIRNAME
    return sub if sub.is_dir() else folder


def load_official_folder(
    folder: Path, device: torch.device, dtype: torch.dtype, fp8: bool = False
) -> LoadedModel:
    """FantasyWorld-Wan2.1-I2V-14B-480P: ``model.pth`` + the Wan2.1-I2V-14B-480P files.

    A shared FP8 Wan DiT file (``*fp8_e4m3fn*.safetensors``) in the Wan folder is used instead of the
    bf16 shards when ``fp8`` is set or the shards are absent.
    """
    from fantasy_world.models.fantasy.official_checkpoint import load_official_fantasyworld
    from fantasy_world.models.wan.clip_vision import load_clip_vision
    from fantasy_world.models.wan.vae import load_wan_vae

    wan_dir = _official_wan_dir(folder)
    needed = {
        "Wan VAE": wan_dir / "Wan2.1_VAE.pth",
        "umT5 encoder": wan_dir / "models_t5_umt5-xxl-enc-bf16.pth",
        "umT5 tokenizer folder": wan_dir / "google" / "umt5-xxl",
        "CLIP image encoder": wan_dir / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth",
    }
    for what, path in needed.items():
        if not path.exists():
            raise CheckpointError(f"{folder}: missing the {what} ({path.name}) of Wan2.1-I2V-14B-480P")
    wan_dit = pick_wan_dit_source(wan_dir, fp8)
    model, report = load_official_fantasyworld(
        wan_dit, folder / "model.pth", device=device, dtype=dtype, fp8=fp8
    )
    log.info(report.summary() if hasattr(report, "summary") else str(report))
    vae = load_wan_vae(needed["Wan VAE"], device=device, dtype=torch.float32)
    text = load_text_encoder("umt5-xxl", str(wan_dir), device, dtype)
    clip = load_clip_vision(needed["CLIP image encoder"], device=device, dtype=dtype)
    return LoadedModel(
        name="wan2.1-i2v-14b",
        model=model.eval(),
        vae=vae.eval(),
        text_encoder=text,
        image_encoder=clip.eval(),
        defaults=dataclasses.replace(OFFICIAL_I2V_DEFAULTS),
        trained=True,
        tiled_decode=True,
    )


@dataclass(frozen=True)
class Wan22Sizes:
    """Sizes of the Wan2.2 parts built before their weights are read (full size unless a test shrinks them)."""

    model: FantasyWorldConfig
    text: UMT5Config
    vae: WanVAEConfig


def wan22_sizes() -> Wan22Sizes:
    """The published sizes: one ``wan2.2-fun-a14b`` config for both experts, umT5-XXL, the Wan2.1 VAE."""
    return Wan22Sizes(
        fantasy_world_config("wan2.2-fun-a14b"), UMT5_PRESETS["umt5-xxl"], wan_vae_config("wan2.1")
    )


def is_wan22_folder(folder: Path) -> bool:
    """A folder with the FantasyWorld Wan2.2 expert files (``high_noise_model.pth`` / ``low_noise_model.pth``)."""
    return (folder / "high_noise_model.pth").is_file() or (folder / "low_noise_model.pth").is_file()


def load_wan22_folder(
    folder: Path, device: torch.device, dtype: torch.dtype, fp8: bool = False
) -> LoadedModel:
    """FantasyWorld-Wan2.2-Fun-A14B: two experts kept in host memory (one on ``device`` at a time), umT5, VAE.

    Each expert is built the official way (base shards, reward LoRA merged at 0.55 in bf16, expert file laid
    over); :class:`ExpertResidency` then parks both in (pinned, on CUDA) host memory. About 70 GB of host RAM.
    """
    from fantasy_world.models.fantasy.expert_residency import park_on_host
    from fantasy_world.models.fantasy.experts import WAN22_FUN_EXPERTS
    from fantasy_world.models.fantasy.official_wan22 import load_wan22_expert, resolve_wan22_folder
    from fantasy_world.models.wan.umt5 import load_umt5
    from fantasy_world.models.wan.vae import load_wan_vae

    sizes = wan22_sizes()
    files = resolve_wan22_folder(folder)  # every file present, before gigabytes are read
    pin = device.type == "cuda"
    experts: dict[str, FantasyWorldModel] = {}
    for name in WAN22_FUN_EXPERTS.names:
        experts[name], _ = load_wan22_expert(
            files.expert_dirs[name],
            files.reward_loras[name],
            files.fantasy[name],
            expert=name,
            cfg=sizes.model,
            device="cpu",
            dtype=dtype,
        )  # its key report is logged by the loader
        quantize_model(experts[name], fp8)  # FP8 layers before parking: half the host and card bytes
        park_on_host(experts[name], pin)  # parked now: at most one expert's loading copy exists at a time
    residency = ExpertResidency(experts, WAN22_FUN_EXPERTS, device=device, pin=pin)
    vae = load_wan_vae(files.vae, cfg=sizes.vae, device=device, dtype=torch.float32)
    text = load_umt5(files.t5, tokenizer_dir=files.tokenizer, cfg=sizes.text, device=device, dtype=dtype)
    return LoadedModel(
        name="wan2.2-fun-a14b",
        model=experts[WAN22_FUN_EXPERTS.low],
        vae=vae.to(device).eval(),
        text_encoder=text,
        image_encoder=None,
        defaults=dataclasses.replace(WAN22_DEFAULTS),
        trained=True,
        tiled_decode=device.type == "cuda",
        experts=residency,
    )


def load_model(
    name_or_path: str | Path, device: torch.device, dtype: torch.dtype, fp8: bool = False
) -> LoadedModel:
    """Resolve ``tiny``, one of our model folders, or an official FantasyWorld folder; ``fp8`` swaps the
    DiT and geometry-branch linears for FP8 layers (``fantasy_world.quant``)."""
    text = str(name_or_path)
    if text == "tiny":
        return load_our_folder(tiny_folder(), device, dtype, fp8)
    folder = Path(text).expanduser()
    if not folder.exists():
        raise CheckpointError(
            f"model {text!r}: not found; expected 'tiny', a model folder with {CONFIG_FILE}, or a folder with "
            f"the official FantasyWorld model.pth and the {WAN_I2V_DIRNAME} files, or the official Wan2.2 "
            "high_noise_model.pth / low_noise_model.pth and their files (see checkpoints/README.md)"
        )
    if not folder.is_dir():
        raise CheckpointError(f"model {text!r}: expected a folder, got a file")
    if (folder / CONFIG_FILE).is_file():
        return load_our_folder(folder, device, dtype, fp8)
    if (folder / "model.pth").is_file():
        return load_official_folder(folder, device, dtype, fp8)
    if is_wan22_folder(folder):
        return load_wan22_folder(folder, device, dtype, fp8)
    raise CheckpointError(
        f"model folder {folder}: holds neither {CONFIG_FILE} (our format), model.pth (official FantasyWorld "
        "Wan2.1) nor high_noise_model.pth / low_noise_model.pth (official FantasyWorld Wan2.2)"
    )
