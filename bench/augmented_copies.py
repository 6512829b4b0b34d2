#!/usr/bin/env python3
"""A control for method (d): a generation root whose generated images are augmented copies.

    python3 bench/augmented_copies.py GENERATION_ROOT OUTPUT_ROOT [--max-shift 2]
        [--flip-probability 0.5] [--seed 0]

Every generated image of GENERATION_ROOT is replaced by a random real original of its class
(seeded), flipped left-right with --flip-probability and shifted by up to --max-shift pixels each way
(zero fill); originals are copied unchanged. `worker evaluate --generation OUTPUT_ROOT
--methods anygan` then measures what (d)'s set-up gives with images that are as varied as plain
augmentation makes them and exactly as real as the originals: the bar a generator has to clear
to be worth more than flips and shifts. Needs numpy.
"""

import argparse
from pathlib import Path

import numpy as np

from calibrate_generated import generated_with_exemplars, read_generation, write_generation


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
    parser.add_argument("--flip-probability", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    images, labels, mask = read_generation(args.root, args.output, "augmented_copies")
    rng = np.random.default_rng(args.seed)
    for i, image in generated_with_exemplars(images, labels, mask, rng):
        if rng.random() < args.flip_probability:
            image = image[:, ::-1]
        dy, dx = rng.integers(-args.max_shift, args.max_shift + 1, size=2)
        images[i] = shifted(image, int(dy), int(dx))
    write_generation(args.root, args.output, images, labels)
    print(f"replaced {int(mask.sum())} generated images by augmented copies -> {args.output}")


if __name__ == "__main__":
    main()
