#!/usr/bin/env python3
"""Summarise burn's GPU runtime (cubecl) kernel profile: how many kernels a training step
launches and how long the GPU is busy with them, against the step's wall time.

bench/gpu.sh writes the profile by running the train_step bench with a cubecl.toml that sets
`[profiling.logger] level = "basic"`: every kernel launch is then timed on its own and logged as
`| <duration> | <kernel name>`. Timing each kernel alone serialises the GPU, so the bench's step
times in that run are not the real ones; the busy time and the launch count are what to read.

    python3 bench/kernel_profile.py kernels.log --steps 4 [--top 15]

Standard library only. A log with no kernel line is an error.
"""

import argparse
import re
import sys
from collections import defaultdict

# `{:?}` of a Rust Duration: 812ns, 12.5µs (or us), 3.2ms, 1.05s
KERNEL_LINE = re.compile(r"^\|\s*([0-9.]+)(ns|µs|us|ms|s)\s*\|\s*(.+?)\s*$")
SECONDS = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def parse(lines):
    """Yields (seconds, kernel name) for every kernel line; other lines (the summary tables
    cubecl prints at each sync) do not match."""
    for line in lines:
        match = KERNEL_LINE.match(line)
        if match:
            value, unit, name = match.groups()
            yield float(value) * SECONDS[unit], name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log")
    parser.add_argument("--steps", type=int, required=True,
                        help="training steps the log covers (warm-up included)")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    if args.steps < 1:
        print("--steps must be at least 1", file=sys.stderr)
        return 2
    try:
        with open(args.log, encoding="utf-8", errors="replace") as log:
            kernels = list(parse(log))
    except OSError as error:
        print(f"{args.log}: {error}", file=sys.stderr)
        return 1
    if not kernels:
        print(f"{args.log}: no kernel lines (`| <duration> | <name>`); was profiling on?",
              file=sys.stderr)
        return 1
    busy = sum(seconds for seconds, _ in kernels)
    by_name = defaultdict(lambda: [0, 0.0])
    for seconds, name in kernels:
        by_name[name][0] += 1
        by_name[name][1] += seconds
    print(f"{len(kernels)} kernel launches over {args.steps} steps: "
          f"{len(kernels) / args.steps:.0f} per step, GPU busy {busy / args.steps * 1e3:.2f} ms "
          f"per step, {busy / len(kernels) * 1e6:.1f} µs per launch, {len(by_name)} distinct kernels")
    print()
    print("| kernel | launches per step | GPU ms per step | share |")
    print("|---|---|---|---|")
    ranked = sorted(by_name.items(), key=lambda item: item[1][1], reverse=True)
    for name, (count, seconds) in ranked[: args.top]:
        shown = name if len(name) <= 90 else name[:87] + "..."
        print(f"| `{shown}` | {count / args.steps:.1f} | {seconds / args.steps * 1e3:.3f} | "
              f"{100 * seconds / busy:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
