#!/usr/bin/env python3
"""Combine the runs of one or more `results.json` files (from `worker evaluate` or a scheduled
evaluation) into mean ± std over seeds, per method and test set, as markdown tables.

An evaluation's own report covers the seeds it ran; this is for seeds run separately (say seed 0
one day, seeds 1 and 2 the next, each into its own output) or set-ups from different runs side
by side. Each input is labelled with its file name unless given as LABEL=PATH, so the same
method from two set-ups stays apart:

    python3 bench/summarize.py b=out/eval-b/results.json d=out/eval-d/results.json

Standard library only. A seed that appears twice for one label, method and test set is an
error (it would be counted twice).
"""

import argparse
import json
import statistics
import sys
from collections import defaultdict

METRICS = ("acsa", "gm_ovr", "macro_f1")


def load(arguments):
    """Runs grouped by (test set, label, method) -> {seed: run}."""
    groups = defaultdict(dict)
    for argument in arguments:
        label, separator, path = argument.partition("=")
        if not separator:
            label, path = "", argument
        try:
            with open(path) as file:
                runs = json.load(file)
        except (OSError, json.JSONDecodeError) as error:
            sys.exit(f"{path}: {error}")
        if not isinstance(runs, list):
            sys.exit(f"{path}: expected a list of runs (results.json), found {type(runs).__name__}")
        for index, run in enumerate(runs):
            try:
                key = (run["test_set"], label, run["method"])
                seed = run["seed"]
                run["metrics"]["recalls"]
            except (KeyError, TypeError) as error:
                sys.exit(f"{path}: run {index} lacks {error}")
            if seed in groups[key]:
                sys.exit(f"{path}: seed {seed} of {key[2]} ({key[0]} test) appears twice")
            groups[key][seed] = run
    return groups


def mean_std(values):
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="results.json files, optionally LABEL=PATH")
    parser.add_argument("--class-names", help="comma-separated, for the recall table's header")
    arguments = parser.parse_args()
    groups = load(arguments.results)

    for test_set in sorted({key[0] for key in groups}):
        # (set-up name, runs in seed order) for every label and method scored on this test set.
        rows = [
            (f"{label}: {method}" if label else method, [seeds[s] for s in sorted(seeds)])
            for (test, label, method), seeds in groups.items()
            if test == test_set
        ]
        title = "validation set" if test_set == "validation" else f"{test_set} test"
        print(f"\n{title}, mean ± std over seeds, %\n")
        print("| set-up | seeds | " + " | ".join(METRICS) + " | ACSA per seed |")
        print("|---|---|" + "---|" * (len(METRICS) + 1))
        for name, runs in rows:
            cells = []
            for metric in METRICS:
                mean, std = mean_std([100 * run["metrics"][metric] for run in runs])
                cells.append(f"{mean:.2f} ± {std:.2f}")
            per_seed = " ".join(f"{100 * run['metrics']['acsa']:.2f}" for run in runs)
            seeds = ",".join(str(run["seed"]) for run in runs)
            print(f"| {name} | {seeds} | " + " | ".join(cells) + f" | {per_seed} |")

        classes = len(rows[0][1][0]["metrics"]["recalls"])
        names = arguments.class_names.split(",") if arguments.class_names else range(classes)
        print(f"\n{title}, recall %, mean over seeds\n")
        print("| set-up | " + " | ".join(str(name) for name in names) + " |")
        print("|---|" + "---|" * classes)
        for name, runs in rows:
            recalls = [
                100 * statistics.mean(run["metrics"]["recalls"][c] for run in runs)
                for c in range(classes)
            ]
            print(f"| {name} | " + " | ".join(f"{recall:.1f}" for recall in recalls) + " |")

if __name__ == "__main__":
    main()
