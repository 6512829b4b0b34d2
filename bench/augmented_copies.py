#!/usr/bin/env python3
"""A control for method (d): a generation root whose generated images are augmented copies.

    python3 bench/augmented_copies.py GENERATION_ROOT OUTPUT_ROOT [--max-shift 2] [--seed 0]

Every generated image of GENERATION_ROOT is replaced by a random real original of its class
(seeded), flipped left-right half the time and shifted by up to --max-shift pixels each way
(zero fill); originals are copied unchanged. `worker evaluate --generation OUTPUT_ROOT
--methods anygan` then measures what (d)'s set-up gives with images that are as varied as plain
augmentation makes them and exactly as real as the originals: the bar a generator has to clear
to be worth more than flips and shifts. Needs numpy.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from calibrate_generated import generated_mask, write_idx
from memorization import read_idx


def shifted(image, dy, dx):
    """`image` moved down by dy and right by dx pixels (negative: up, left), zero fill."""
    height, width = image.shape
    out = np.zeros_like(image)
    out[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = image[
        max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)
    ]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--max-shift", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.output.resolve() == args.root.resolve():
        sys.exit("augmented_copies: OUTPUT_ROOT must differ from GENERATION_ROOT")
    try:
        images = read_idx(args.root / "rebalanced/idx/images.idx").copy()
        labels = read_idx(args.root / "rebalanced/idx/labels.idx")
        manifest = json.loads((args.root / "MANIFEST.json").read_text())
        originals = [c["original"] for c in manifest["plan"]["classes"]]
    except (OSError, ValueError, KeyError) as error:
        sys.exit(f"augmented_copies: {args.root}: not a generation root ({error})")
    mask = generated_mask(labels, originals)
    rng = np.random.default_rng(args.seed)
    real_of = {k: np.flatnonzero((labels == k) & ~mask) for k in range(len(originals))}
    for i in np.flatnonzero(mask):
        candidates = real_of[labels[i]]
        if len(candidates) == 0:
            continue
        image = images[rng.choice(candidates)]
        if rng.random() < 0.5:
            image = image[:, ::-1]
        dy, dx = rng.integers(-args.max_shift, args.max_shift + 1, size=2)
        images[i] = shifted(image, int(dy), int(dx))
    (args.output / "rebalanced/idx").mkdir(parents=True, exist_ok=True)
    write_idx(args.output / "rebalanced/idx/images.idx", images)
    write_idx(args.output / "rebalanced/idx/labels.idx", labels)
    shutil.copy(args.root / "MANIFEST.json", args.output / "MANIFEST.json")
    print(f"replaced {int(mask.sum())} generated images by augmented copies -> {args.output}")


if __name__ == "__main__":
    main()
