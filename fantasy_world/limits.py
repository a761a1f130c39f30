"""Every limit on user input in one table, so the API, the CLI, the studio and the camera readers agree.

Two frame limits exist on purpose: a generated video is at most ``MAX_VIDEO_FRAMES`` long (the model's
1+4k frames; a device may lower it through ``SizeLimits``), while a camera file or an edited path may hold
up to ``MAX_CAMERA_FRAMES`` cameras, which are re-sampled to the video's frame count. Likewise two field
of view ranges: what a camera file or preset may ask for, and the clamp that keeps cameras decoded from
the model's pose head physical (a 0° FoV would be an infinite focal length).
"""

from __future__ import annotations

# Generation requests (fantasy_world.validation)
MAX_PROMPT_CHARS = 2000
MAX_VIDEO_FRAMES = 257
MAX_STEPS = 1000
MAX_GUIDANCE = 50.0
MAX_IMAGE_PIXELS = 40_000_000  # start images, checked from the header before decoding
MAX_IMAGE_BYTES = 50 * 1024 * 1024

# Camera files, presets and paths (fantasy_world.camera)
MAX_CAMERA_FRAMES = 10_000  # cameras or keyframes in one file or path
MAX_CAMERA_FILE_BYTES = 20 * 1024 * 1024
MAX_CAMERA_IMAGE_SIDE = 16_384  # width/height a camera file may declare
CAMERA_FOV_DEG = (1e-3, 179.9)  # vertical field of view a camera may ask for

# Model read-out (fantasy_world.readout)
PREDICTED_FOV_DEG = (5.0, 170.0)  # clamp of the FoV decoded from the pose head
