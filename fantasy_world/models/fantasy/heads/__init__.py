"""Prediction heads of the geometry branch: camera poses, depth and world points."""

from .activations import activate_dense, activate_pose, exp, expp1, inv_log
from .camera_head import CameraHead, CameraHeadConfig, ChannelExpandAndReshape
from .dpt_head import DPTHead, DPTHeadConfig
from .temporal_upsampler import TemporalUpsampler

__all__ = [
    "CameraHead",
    "CameraHeadConfig",
    "ChannelExpandAndReshape",
    "DPTHead",
    "DPTHeadConfig",
    "TemporalUpsampler",
    "activate_dense",
    "activate_pose",
    "exp",
    "expp1",
    "inv_log",
]
