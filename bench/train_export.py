"""Write the bundled model folder from a trained phase folder, with the shipped generation defaults.

    python bench/train_export.py --src runs/tiny/stage2/final --dst checkpoints/fantasyworld-tiny \
        [--record training_record.json]

Weights are stored in float16 (the pipeline casts them to its dtype when loading); every file must stay
≤ 16 MiB and the folder ≤ 40 MiB, which this script checks. ``--record`` (JSON) is merged into the
folder's ``training`` entry (phases, steps, machines, times).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MAX_FILE = 16 * 2**20
MAX_FOLDER = 40 * 2**20


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", required=True)
    p.add_argument("--dst", required=True)
    p.add_argument("--record", default=None)
    p.add_argument(
        "--checkpoint",
        default=None,
        help="training checkpoint folder to take the weights from (EMA applied); --src gives the config and VAE",
    )
    p.add_argument("--name", default="tiny")
    args = p.parse_args()

    import torch

    from fantasy_world.model_folder import TINY_DEFAULTS, save_our_folder
    from fantasy_world.training.weights import load_weights_folder

    model, vae, meta = load_weights_folder(args.src)
    if args.checkpoint:
        from fantasy_world.training.checkpoint import load_train_state

        state = load_train_state(args.checkpoint)
        model.load_state_dict(state.model)
        with torch.no_grad():
            own = dict(model.named_parameters())
            for name, value in state.ema.items():
                own[name].copy_(value)
        print(f"weights: {args.checkpoint} step {state.meta['step']} (EMA of {len(state.ema)} tensors)")
    training = dict(meta.get("training", {}))
    if args.record:
        training.update(json.loads(Path(args.record).read_text()))
    # reconstruction conditions on the empty caption, the unconditional input seen in training
    defaults = dataclasses.replace(TINY_DEFAULTS, reconstruct_prompt="")
    dst = Path(args.dst)
    for old in dst.glob("*.safetensors*"):
        old.unlink()
    save_our_folder(
        dst,
        args.name,
        model.eval(),
        vae.eval(),
        defaults,
        weight_dtype=torch.float16,
        extra={"training": training},
    )
    sizes = {f.name: f.stat().st_size for f in dst.iterdir() if f.is_file()}
    too_big = [n for n, s in sizes.items() if s > MAX_FILE]
    total = sum(sizes.values())
    print(json.dumps({"files": sizes, "total_bytes": total}, indent=1))
    if too_big or total > MAX_FOLDER:
        print(f"error: files over 16 MiB {too_big} or folder {total} bytes over 40 MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
