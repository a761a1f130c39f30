"""Build the compact MiniLM text pack that the GPU node needs for training, evaluation and tiny timing.

    python bench/build_text_pack.py --out .train_state/minilm_pack [--seeds 3000]

Why: the lent GPU machines cannot install the MiniLM package (over the size that travels), so the
benchmarks rebuild it there from a pack (``fantasy_world.training.text_pack``) that keeps only the word
pieces our texts use. The texts are every lowercase word of the caption vocabulary modules, the captions
of the first ``--seeds`` training seeds (computed without rendering) and the fixed extra prompts; the pack
is then checked against them, so a caption with a word piece outside it fails here, not on the node.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness.seed_captions import EXTRA_PROMPTS, captions_of_seeds  # noqa: E402
from fantasy_world.models.wan.minilm import bundled_minilm_dir  # noqa: E402
from fantasy_world.training.text_pack import check_vocabulary, pack_minilm, unpack_minilm  # noqa: E402

WORD_SOURCES = ("captions.py", "attributes.py", "scene_sampling.py", "environment.py")


def pack_texts(seeds: int) -> list[str]:
    words: set[str] = set()
    for name in WORD_SOURCES:
        words.update(re.findall(r"[a-z]+", (ROOT / "fantasy_world" / "data" / name).read_text()))
    return sorted(words) + captions_of_seeds(range(seeds)) + list(EXTRA_PROMPTS)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seeds", type=int, default=3000)
    args = p.parse_args()
    texts = pack_texts(args.seeds)
    info = pack_minilm(bundled_minilm_dir(), args.out, texts)
    with tempfile.TemporaryDirectory() as tmp:
        check_vocabulary(unpack_minilm(args.out, Path(tmp) / "model"), texts)
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"text pack: {args.out} ({size / 2**20:.1f} MiB, {len(texts)} texts) {info}")


if __name__ == "__main__":
    main()
