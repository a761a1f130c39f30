"""Geometry I/O: depth → points, filtering, and every export of the output bundle (file list in docs/ARCHITECTURE.md)."""

from __future__ import annotations

from fantasy_world.geometry.bundle import load_bundle, write_bundle
from fantasy_world.geometry.colmap import ColmapModel, colmap_to_arrays, read_colmap_text, write_colmap_text
from fantasy_world.geometry.depth_video import colorize_depth, depth_range, write_depth_video
from fantasy_world.geometry.filtering import (
    cap_indices,
    conf_percentile_mask,
    conf_threshold_mask,
    flying_pixel_mask,
    stride_mask,
    valid_depth_mask,
)
from fantasy_world.geometry.glb import build_scene, write_glb
from fantasy_world.geometry.nerfstudio import read_transforms, write_transforms
from fantasy_world.geometry.npz import NPZ_KEYS, load_world_npz, save_world_npz
from fantasy_world.geometry.ply import read_ply, write_ply
from fantasy_world.geometry.pointcloud import PointCloud, PointFilter, build_point_cloud, world_point_cloud
from fantasy_world.geometry.unproject import (
    camera_to_world,
    depth_to_camera_points,
    depth_to_world_points,
    project_points,
)
from fantasy_world.geometry.video import read_video, write_video
from fantasy_world.geometry.world_data import WorldData

__all__ = [
    "NPZ_KEYS",
    "ColmapModel",
    "PointCloud",
    "PointFilter",
    "WorldData",
    "build_point_cloud",
    "build_scene",
    "camera_to_world",
    "cap_indices",
    "colmap_to_arrays",
    "colorize_depth",
    "conf_percentile_mask",
    "conf_threshold_mask",
    "depth_range",
    "depth_to_camera_points",
    "depth_to_world_points",
    "flying_pixel_mask",
    "load_bundle",
    "load_world_npz",
    "project_points",
    "read_colmap_text",
    "read_ply",
    "read_transforms",
    "read_video",
    "save_world_npz",
    "stride_mask",
    "valid_depth_mask",
    "world_point_cloud",
    "write_bundle",
    "write_colmap_text",
    "write_depth_video",
    "write_glb",
    "write_ply",
    "write_transforms",
    "write_video",
]
