#!/usr/bin/env python3
"""Combine the runs of one or more `results.json` files (from `worker evaluate` or a scheduled
evaluation) into mean ± std over seeds, per method and test set, as markdown tables.

An evaluation's own report covers the seeds it ran; this is for seeds run separately (say seed 0
one day, seeds 1 and 2 the next, each into its own output) or set-ups from different runs side
by side. Each input is labelled with its file name unless given as LABEL=PATH, so the same
method from two set-ups stays apart:

    python3 bench/summarize.py b=out/eval-b/results.json d=out/eval-d/results.json

Every set-up of method (d) (`anygan`) is then compared with every other remedy's on the same
test set, by the rule of the evaluation's own report (`worker/src/eval/verdict.rs`): ahead or
behind only when the means differ by more than the larger of the two standard deviations over
seeds, level otherwise, no call with one seed; beside it the paired difference over the seeds
both ran. Where the inputs hold the generator's own measurements (`cas`, `full-real`), the
share of the generated images the reference labels as their class and their novelty follow,
per class.

Standard library only. A seed that appears twice for one label, method and test set is an
error (it would be counted twice).
"""

import argparse
import json
import statistics
import sys
from collections import defaultdict

METRICS = ("acsa", "gm_ovr", "macro_f1")
# The generator's own measurements, not remedies (d) is compared with.
QUALITY = ("cas", "full-real")


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
                if "generated_fidelity" in run:
                    run["generated_fidelity"]["correct"]
                if "generated_novelty" in run:
                    run["generated_novelty"]["generated_median"]
                    run["generated_novelty"]["held_out_median"]
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


def standing(anygan, other):
    """The rule, on (mean, std, seeds) of each: 'ahead'/'behind' beyond the larger std over
    seeds, 'level' within it, no call from one seed."""
    (anygan_mean, anygan_std, anygan_seeds), (other_mean, other_std, other_seeds) = anygan, other
    if anygan_seeds < 2 or other_seeds < 2:
        return "one seed: cannot tell"
    margin = max(anygan_std, other_std)
    difference = anygan_mean - other_mean
    if difference > margin:
        return "**ahead**"
    if -difference > margin:
        return "behind"
    return "level"


def print_comparisons(title, rows):
    """(d) set-ups against every other remedy's, balanced accuracy in %."""
    acsa = {name: {run["seed"]: 100 * run["metrics"]["acsa"] for run in runs} for name, runs, _ in rows}
    anygans = [name for name, _, method in rows if method == "anygan"]
    others = [name for name, _, method in rows if method not in ("anygan",) + QUALITY]
    if not anygans or not others:
        return
    print(f"\n{title}: (d) against the other remedies, ACSA %\n")
    print("| (d) set-up | against | (d) | other | difference | paired (seeds) | standing |")
    print("|---|---|---|---|---|---|---|")
    for anygan in anygans:
        for other in others:
            ours, theirs = acsa[anygan], acsa[other]
            (ours_mean, ours_std), (theirs_mean, theirs_std) = (
                mean_std(list(ours.values())),
                mean_std(list(theirs.values())),
            )
            shared = sorted(set(ours) & set(theirs))
            if shared:
                paired_mean, paired_std = mean_std([ours[s] - theirs[s] for s in shared])
                paired = f"{paired_mean:+.2f} ± {paired_std:.2f} ({len(shared)})"
            else:
                paired = "–"
            print(
                f"| {anygan} | {other} | {ours_mean:.2f} ± {ours_std:.2f} | "
                f"{theirs_mean:.2f} ± {theirs_std:.2f} | {ours_mean - theirs_mean:+.2f} | {paired} | "
                f"{standing((ours_mean, ours_std, len(ours)), (theirs_mean, theirs_std, len(theirs)))} |"
            )


def novelty_range(ratios):
    """Smallest–largest ratio over the classes; a class without held-out images (no ratio) is
    left out rather than let NaN decide the order."""
    measured = [ratio for ratio in ratios if ratio == ratio]
    return f"{min(measured):.2f}–{max(measured):.2f}" if measured else "–"


def print_generator_quality(groups, names):
    """Per class, the share of the generated images the reference classifier (full-real) labels
    as their own class, and the novelty ratio the CAS run measured (median distance of generated
    images to their nearest original over that of held-out real images: about 1 for new images,
    well below 1 for copies). Both describe the generated images, not a test set: each set-up's
    first run that holds them is read. Set-ups in the order of the inputs."""
    fidelity, novelty = {}, {}
    for (_, label, method), seeds in groups.items():
        name = f"{label}: {method}" if label else method
        for seed in sorted(seeds):
            run = seeds[seed]
            if "generated_fidelity" in run:
                correct = run["generated_fidelity"]["correct"]
                fidelity.setdefault(name, [100 * share for share in correct])
            if "generated_novelty" in run:
                measured = run["generated_novelty"]
                ratios = [
                    generated / held_out if held_out > 0 else float("nan")
                    for generated, held_out in zip(
                        measured["generated_median"], measured["held_out_median"]
                    )
                ]
                novelty.setdefault(name, ratios)
    tables = (
        (
            "generated images the reference labels as their class, %",
            fidelity,
            "{:.1f}",
            lambda values: f"{statistics.mean(values):.1f}",
        ),
        (
            "novelty of the generated images (1: as new as real images; below: nearer copies)",
            novelty,
            "{:.2f}",
            novelty_range,
        ),
    )
    for title, table, cell, all_classes in tables:
        if not table:
            continue
        classes = len(next(iter(table.values())))
        print(f"\n{title}\n")
        print("| set-up | " + " | ".join(str(n) for n in names or range(classes)) + " | all classes |")
        print("|---|" + "---|" * (classes + 1))
        for name, values in table.items():
            cells = " | ".join(cell.format(value) for value in values)
            print(f"| {name} | {cells} | {all_classes(values)} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="results.json files, optionally LABEL=PATH")
    parser.add_argument("--class-names", help="comma-separated, for the recall table's header")
    arguments = parser.parse_args()
    groups = load(arguments.results)
    names = arguments.class_names.split(",") if arguments.class_names else None

    for test_set in sorted({key[0] for key in groups}):
        # (set-up name, runs in seed order) for every label and method scored on this test set.
        rows = [
            (f"{label}: {method}" if label else method, [seeds[s] for s in sorted(seeds)], method)
            for (test, label, method), seeds in groups.items()
            if test == test_set
        ]
        title = "validation set" if test_set == "validation" else f"{test_set} test"
        print(f"\n{title}, mean ± std over seeds, %\n")
        print("| set-up | seeds | " + " | ".join(METRICS) + " | ACSA per seed |")
        print("|---|---|" + "---|" * (len(METRICS) + 1))
        for name, runs, _ in rows:
            cells = []
            for metric in METRICS:
                mean, std = mean_std([100 * run["metrics"][metric] for run in runs])
                cells.append(f"{mean:.2f} ± {std:.2f}")
            per_seed = " ".join(f"{100 * run['metrics']['acsa']:.2f}" for run in runs)
            seeds = ",".join(str(run["seed"]) for run in runs)
            print(f"| {name} | {seeds} | " + " | ".join(cells) + f" | {per_seed} |")

        classes = len(rows[0][1][0]["metrics"]["recalls"])
        print(f"\n{title}, recall %, mean over seeds\n")
        print("| set-up | " + " | ".join(str(name) for name in names or range(classes)) + " |")
        print("|---|" + "---|" * classes)
        for name, runs, _ in rows:
            recalls = [
                100 * statistics.mean(run["metrics"]["recalls"][c] for run in runs)
                for c in range(classes)
            ]
            print(f"| {name} | " + " | ".join(f"{recall:.1f}" for recall in recalls) + " |")
        print_comparisons(title, rows)
    print_generator_quality(groups, names)


if __name__ == "__main__":
    main()
