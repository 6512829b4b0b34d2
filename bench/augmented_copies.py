#!/usr/bin/env python3
"""A control for method (d): a generation root whose generated images are augmented copies.

    python3 bench/augmented_copies.py GENERATION_ROOT OUTPUT_ROOT [--max-shift 2]
        [--flip-probability 0.5] [--replace-share 1] [--augment-kept] [--seed 0]

Every generated image of GENERATION_ROOT is replaced by a random real original of its class
(seeded), flipped left-right with --flip-probability and shifted by up to --max-shift pixels each way
(zero fill); originals are copied unchanged. `worker evaluate --generation OUTPUT_ROOT
--methods anygan` then measures what (d)'s set-up gives with images that are as varied as plain
augmentation makes them and exactly as real as the originals: the bar a generator has to clear
to be worth more than flips and shifts. With --replace-share below 1 only that share of each
class's generated images (a seeded random choice) is replaced, the rest stay generated: whether
generated images add anything beside augmented copies; --augment-kept flips and shifts the
generated images that stay as well. Needs numpy.
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


def replaced_share(labels, generated, share, seed):
    """The generated records to replace: `share` of each class's, a seeded random choice (its
    own stream, so that share 1 replaces exactly what it always did)."""
    if share >= 1.0:
        return generated
    rng = np.random.default_rng([seed, 1])
    chosen = np.zeros_like(generated)
    for k in np.unique(labels):
        members = np.flatnonzero(generated & (labels == k))
        chosen[rng.permutation(members)[: round(share * len(members))]] = True
    return chosen


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--max-shift", type=int, default=2)
    parser.add_argument("--flip-probability", type=float, default=0.5)
    parser.add_argument("--replace-share", type=float, default=1.0)
    parser.add_argument(
        "--augment-kept",
        action="store_true",
        help="flip and shift the generated images left in place as well",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not 0.0 <= args.replace_share <= 1.0:
        parser.error(f"--replace-share {args.replace_share} is not a share between 0 and 1")
    images, labels, generated = read_generation(args.root, args.output, "augmented_copies")
    mask = replaced_share(labels, generated, args.replace_share, args.seed)
    rng = np.random.default_rng(args.seed)

    def augmented(image):
        if rng.random() < args.flip_probability:
            image = image[:, ::-1]
        dy, dx = rng.integers(-args.max_shift, args.max_shift + 1, size=2)
        return shifted(image, int(dy), int(dx))

    for i, image in generated_with_exemplars(images, labels, mask, rng):
        images[i] = augmented(image)
    kept = generated & ~mask
    if args.augment_kept:
        for i in np.flatnonzero(kept):
            images[i] = augmented(images[i])
    write_generation(args.root, args.output, images, labels)
    print(
        f"replaced {int(mask.sum())} generated images by augmented copies, kept {int(kept.sum())}"
        f"{' (augmented)' if args.augment_kept else ''} -> {args.output}"
    )


if __name__ == "__main__":
    main()
