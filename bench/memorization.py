#!/usr/bin/env python3
"""Does the generator draw new members of a class, or its training images again?

    python3 bench/memorization.py GENERATION_ROOT [--test-images t10k-images-idx3-ubyte.gz]
        [--test-labels t10k-labels-idx1-ubyte.gz] [--per-class 500] [--seed 0]

For every class that has generated images it measures, in gray levels (0-255, root mean square
over the pixels), how far each generated image is from its nearest *training* image of its
class, and how far each real *test* image of the class is from the same training images. A
generator that produces new members of the class sits about as far from the training images as
unseen real images do (ratio near 1); one that reproduces the images it was trained on sits much
closer (ratio well below 1), and then its images add little that copies of the originals do not.
`near copies` is the share of generated images closer to a training image than 95 % of the test
images are (5 % would be expected of images drawn like the test images). Coverage, the other
way round: `test→gen` is how far each test image is from its nearest generated image, and
`test nearer gen` the share of test images closer to a generated image than to any original —
where generated images fill in what the originals miss, that share is high.

GENERATION_ROOT is a generation's folder: `rebalanced/idx/{images,labels}.idx` (each class's
originals first, then its generated images) and `MANIFEST.json` (the per-class counts). The
test split defaults to Debian's dataset-fashion-mnist. Needs numpy.
"""

import argparse
import gzip
import json
import sys
from pathlib import Path

import numpy as np

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def read_idx(path):
    """The array an idx file holds (gzip or plain), unsigned bytes only."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte idx file")
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, body holds {body.size} bytes")
    return body.reshape(shape)


def nearest_distances(queries, references, chunk=256):
    """Per query, the RMS pixel distance to its nearest reference (float32, gray levels)."""
    refs = references.reshape(len(references), -1).astype(np.float32)
    ref_norms = (refs**2).sum(axis=1)
    out = []
    flat = queries.reshape(len(queries), -1).astype(np.float32)
    for start in range(0, len(flat), chunk):
        q = flat[start : start + chunk]
        squared = (q**2).sum(axis=1)[:, None] + ref_norms[None, :] - 2.0 * q @ refs.T
        out.append(np.sqrt(np.maximum(squared.min(axis=1), 0.0) / refs.shape[1]))
    return np.concatenate(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--test-images", type=Path, default=DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz")
    parser.add_argument("--test-labels", type=Path, default=DEBIAN_FASHION_MNIST / "t10k-labels-idx1-ubyte.gz")
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    manifest_path = args.root / "MANIFEST.json"
    try:
        counts = json.loads(manifest_path.read_text())["counts"]
    except (OSError, KeyError, ValueError) as err:
        sys.exit(f"{manifest_path}: {err}")
    images = read_idx(args.root / "rebalanced/idx/images.idx")
    labels = read_idx(args.root / "rebalanced/idx/labels.idx")
    test_images = read_idx(args.test_images)
    test_labels = read_idx(args.test_labels)
    if len(images) != len(labels):
        sys.exit(f"{args.root}/rebalanced/idx: {len(images)} images but {len(labels)} labels")
    rng = np.random.default_rng(args.seed)

    print(
        f"{'class':<12} {'train':>5} {'gen→train':>9} {'test→train':>10} {'ratio':>5} "
        f"{'near copies':>11} {'test→gen':>8} {'test nearer gen':>15}"
    )
    for class_index, entry in enumerate(counts):
        members = np.flatnonzero(labels == class_index)
        if len(members) != entry["total"]:
            sys.exit(f"{manifest_path}: class {entry['class']} has {entry['total']} images, the idx {len(members)}")
        if entry["generated"] == 0:
            continue
        originals = images[members[: entry["original"]]]
        all_generated = images[members[entry["original"] :]]
        test = test_images[test_labels == class_index]
        generated = all_generated[rng.permutation(len(all_generated))[: args.per_class]]
        test = test[rng.permutation(len(test))[: args.per_class]]
        generated_nearest = nearest_distances(generated, originals)
        test_nearest = nearest_distances(test, originals)
        # Coverage: are unseen real images closer to some generated image than to any
        # original? (All generated images of the class, not the sample.)
        test_to_generated = nearest_distances(test, all_generated)
        closer = (test_to_generated < test_nearest).mean()
        copy_line = np.quantile(test_nearest, 0.05)
        near_copies = (generated_nearest < copy_line).mean()
        ratio = np.median(generated_nearest) / np.median(test_nearest)
        print(
            f"{entry['class']:<12} {entry['original']:>5} {np.median(generated_nearest):>9.1f} "
            f"{np.median(test_nearest):>10.1f} {ratio:>5.2f} {100 * near_copies:>10.1f}% "
            f"{np.median(test_to_generated):>8.1f} {100 * closer:>14.1f}%"
        )


if __name__ == "__main__":
    main()
