#!/usr/bin/env python3
"""Give each generated image the gray levels of a real image of its class (an experiment).

    python3 bench/calibrate_generated.py GENERATION_ROOT OUTPUT_ROOT [--sharpen A] [--seed S]

Truncated sampling (anygan's default, truncation 0.5) draws images that are blurrier, never
saturated and nearly uniform in brightness: over the generated images of a class the per-image
mean gray level varies about a third as much as over the real ones (`--stats` prints the
figures). This script tests whether that is what makes generated images teach a classifier less
than copies of the real ones. For every generated image it picks a real original of the same
class at random (seeded) and maps the generated image's foreground (pixels above 0), rank by
rank, onto that original's foreground gray levels: the generated image keeps its shape and the
order of its gray levels, the real one supplies brightness, contrast and saturated pixels.
`--sharpen A` first adds A times the difference from a 3x3 binomial blur (unsharp masking) to
the foreground. Originals are copied unchanged.

GENERATION_ROOT is a generation's folder (`rebalanced/idx/{images,labels}.idx`, each class's
originals first, and `MANIFEST.json`); OUTPUT_ROOT gets the same layout, so `worker evaluate
--generation OUTPUT_ROOT` reads it like a generation. Needs numpy.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from memorization import read_idx


def write_idx(path, array):
    """An unsigned-byte idx file of `array`."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def unsharp(image, amount):
    """The foreground plus `amount` times its difference from a 3x3 binomial blur."""
    p = np.pad(image, 1, mode="edge")
    blur = (
        p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:]
        + 2 * p[1:-1, :-2] + 4 * p[1:-1, 1:-1] + 2 * p[1:-1, 2:]
        + p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]
    ) / 16
    return np.where(image > 0, np.maximum(image + amount * (image - blur), 0.5), 0)


def match_foreground(generated, exemplar):
    """`generated` with its foreground's gray levels, rank by rank, those of `exemplar`'s."""
    g = generated.ravel()
    foreground = np.flatnonzero(g > 0)
    levels = np.sort(exemplar.ravel()[exemplar.ravel() > 0])
    if len(foreground) == 0 or len(levels) == 0:
        return generated
    ranks = np.argsort(np.argsort(g[foreground], kind="stable"), kind="stable")
    quantiles = (ranks + 0.5) / len(foreground)
    matched = np.interp(quantiles, (np.arange(len(levels)) + 0.5) / len(levels), levels)
    out = g.copy()
    out[foreground] = np.clip(np.rint(matched), 1, 255)
    return out.reshape(generated.shape)


def read_generation(root, output, tool):
    """A generation root's images (a writable copy), labels and which records are generated;
    exits naming the root when it is not one, or when `output` would overwrite it."""
    if output.resolve() == root.resolve():
        sys.exit(f"{tool}: OUTPUT_ROOT must differ from GENERATION_ROOT")
    try:
        images = read_idx(root / "rebalanced/idx/images.idx").copy()
        labels = read_idx(root / "rebalanced/idx/labels.idx")
        manifest = json.loads((root / "MANIFEST.json").read_text())
        originals = [c["original"] for c in manifest["plan"]["classes"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        sys.exit(f"{tool}: {root}: not a generation root ({error})")
    if len(images) != len(labels):
        sys.exit(f"{tool}: {root}: {len(images)} images but {len(labels)} labels")
    if len(labels) and int(labels.max()) >= len(originals):
        sys.exit(f"{tool}: {root}: label {int(labels.max())} but {len(originals)} classes in MANIFEST.json")
    return images, labels, generated_mask(labels, originals)


def write_generation(root, output, images, labels):
    """`images` and `labels` as a generation root at `output`, with `root`'s manifest."""
    (output / "rebalanced/idx").mkdir(parents=True, exist_ok=True)
    write_idx(output / "rebalanced/idx/images.idx", images)
    write_idx(output / "rebalanced/idx/labels.idx", labels)
    shutil.copy(root / "MANIFEST.json", output / "MANIFEST.json")


def generated_with_exemplars(images, labels, mask, rng):
    """Each generated record's index with a real original of its class drawn for it (`rng`,
    one draw per record, lazily: a caller's own draws in between keep their place in the
    stream); records of a class without originals are skipped."""
    real_of = {k: np.flatnonzero((labels == k) & ~mask) for k in np.unique(labels)}
    for i in np.flatnonzero(mask):
        candidates = real_of[labels[i]]
        if len(candidates) > 0:
            yield i, images[rng.choice(candidates)]


def generated_mask(labels, originals):
    """True for every record past its class's originals (the generation writes those first)."""
    seen = np.zeros(len(originals), int)
    mask = np.zeros(len(labels), bool)
    for i, label in enumerate(labels):
        mask[i] = seen[label] >= originals[label]
        seen[label] += 1
    return mask


def stats(images, labels, mask):
    """Per source: mean gray level, saturated share, gradient energy, per-image brightness spread."""
    for name, chosen in (("real", ~mask), ("generated", mask)):
        x = images[chosen].astype(np.float32)
        gradient = np.abs(np.diff(x, axis=2)).mean() + np.abs(np.diff(x, axis=1)).mean()
        spread = np.mean([
            x[labels[chosen] == k].reshape(-1, x.shape[1] * x.shape[2]).mean(axis=1).std()
            for k in np.unique(labels[chosen])
        ])
        print(
            f"{name}: mean gray {x.mean():.1f}, pixels > 250 {100 * (x > 250).mean():.2f} %, "
            f"mean |gradient| {gradient:.1f}, per-image brightness std (mean over classes) {spread:.1f}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--sharpen", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stats", action="store_true", help="print image statistics before and after")
    args = parser.parse_args()
    images, labels, mask = read_generation(args.root, args.output, "calibrate_generated")
    if args.stats:
        stats(images, labels, mask)
    rng = np.random.default_rng(args.seed)
    for i, exemplar in generated_with_exemplars(images, labels, mask, rng):
        generated = images[i].astype(np.float64)
        if args.sharpen > 0:
            generated = unsharp(generated, args.sharpen)
        images[i] = match_foreground(generated, exemplar).astype(np.uint8)
    if args.stats:
        stats(images, labels, mask)
    write_generation(args.root, args.output, images, labels)
    print(f"calibrated {int(mask.sum())} generated images -> {args.output}")


if __name__ == "__main__":
    main()
