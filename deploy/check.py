#!/usr/bin/env python3
"""Lints the anygan chart and renders it offline with the Helm library (PyPI helm-python-sdk),
then validates every rendered manifest with kubernetes-validate --strict: for the default
values and for each values-*.yaml example. Exit status 0 only when all of it passes.

With --binaries DIR it also runs DIR/coordinator and DIR/worker with each rendered container's
arguments and environment, to prove the binaries accept them (the run then stops at the first
thing only a cluster has: the mounted TLS files).

Usage: python3 deploy/check.py [--kubernetes-version 1.30.0] [--out DIR] [--binaries DIR]
"""
import argparse
import pathlib
import subprocess
import sys
import tempfile

CHART = pathlib.Path(__file__).resolve().parent / "anygan"


def containers(manifests):
    """Every container of every pod template in the rendered manifests."""
    import yaml
    for path in manifests:
        for document in yaml.safe_load_all(pathlib.Path(path).read_text()):
            if not document or document.get("kind") not in ("Deployment", "Job"):
                continue
            for container in document["spec"]["template"]["spec"]["containers"]:
                yield document["kind"], container


def check_arguments(binaries, manifests, variant) -> int:
    """Runs each container's command line with the real binary. A usage error (clap's exit
    status 2) is a failure; any other early exit is expected outside a cluster, as long as it
    is a file a Secret would have mounted."""
    failures = 0
    for kind, container in containers(manifests):
        binary = binaries / ("coordinator" if kind == "Deployment" else "worker")
        env = {"PATH": "/usr/bin:/bin", "POD_NAME": "pod-0", "POD_IP": "127.0.0.1"}
        for variable in container.get("env", []):
            if "value" in variable:
                env[variable["name"]] = variable["value"]
        argv = [a.replace("$(POD_NAME)", env["POD_NAME"]).replace("$(POD_IP)", env["POD_IP"])
                for a in container["args"]]
        run = subprocess.run([str(binary), *argv], env=env, capture_output=True, text=True,
                             timeout=60)
        # The first missing thing must be a file a Secret mounts under /etc/anygan.
        mounted = "ANYGAN_TLS_CA" not in env or "/etc/anygan/" in run.stderr
        if run.returncode == 2 or not mounted:
            print(f"{variant}: {binary.name} refused the chart's arguments "
                  f"(exit {run.returncode}):\n{run.stderr[-2000:]}", file=sys.stderr)
            failures += 1
        else:
            print(f"{variant}: {binary.name} accepts the {kind}'s {len(argv)} arguments")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubernetes-version", default="1.30.0")
    parser.add_argument("--out", help="keep the rendered manifests here")
    parser.add_argument("--binaries", help="directory of the coordinator and worker binaries")
    parser.add_argument("--values", action="append", default=[],
                        help="check this values file too (instead of the chart's examples)")
    args = parser.parse_args()
    try:
        import helm_python as helm
    except ImportError:
        print("deploy/check.py needs PyPI helm-python-sdk and kubernetes-validate "
              "(pip install helm-python-sdk kubernetes-validate)", file=sys.stderr)
        return 2

    out = pathlib.Path(args.out) if args.out else pathlib.Path(tempfile.mkdtemp(prefix="anygan-chart-"))
    examples = [pathlib.Path(v) for v in args.values] or sorted(CHART.glob("values-*.yaml"))
    variants = ([] if args.values else [("default", None)]) + [
        (path.stem, path) for path in examples
    ]
    failures = 0
    for name, values_file in variants:
        values = helm.values_from_yaml(values_file.read_text()) if values_file else None
        report = helm.lint(str(CHART), values, strict=True,
                           kube_version=f"v{args.kubernetes_version}")
        problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
        problems += [{"severity": 3, "path": "", "error": e} for e in report.get("errors") or []]
        for problem in problems:
            print(f"lint {name}: {problem.get('path')}: {problem.get('error')}", file=sys.stderr)
        failures += len(problems)

        chart = helm.Chart.load(str(CHART))
        try:
            rendered = chart.render(values, name="fashion", namespace="anygan", is_install=True)
        except helm.HelmError as error:
            print(f"render {name}: {error}", file=sys.stderr)
            failures += 1
            continue
        directory = out / name
        directory.mkdir(parents=True, exist_ok=True)
        manifests = []
        for template, text in sorted(rendered.items()):
            if not template.endswith((".yaml", ".yml")) or not text.strip():
                continue
            target = directory / pathlib.Path(template).name
            target.write_text(text)
            manifests.append(str(target))
        kinds = sorted({line.split(":", 1)[1].strip()
                        for path in manifests for line in pathlib.Path(path).read_text().splitlines()
                        if line.startswith("kind:")})
        validated = subprocess.run(
            ["kubernetes-validate", "--strict", "--quiet",
             "--kubernetes-version", args.kubernetes_version, *manifests],
            capture_output=True, text=True)
        if validated.returncode != 0:
            print(f"kubernetes-validate {name}:\n{validated.stdout}{validated.stderr}",
                  file=sys.stderr)
            failures += 1
        if args.binaries:
            failures += check_arguments(pathlib.Path(args.binaries), manifests, name)
        notes = rendered.get("anygan/templates/NOTES.txt", "")
        print(f"{name}: lint {'clean' if not problems else f'{len(problems)} problem(s)'}, "
              f"{len(manifests)} manifest file(s) ({', '.join(kinds)}), "
              f"kubernetes-validate --strict {'ok' if validated.returncode == 0 else 'FAILED'}, "
              f"NOTES {len(notes.splitlines())} lines")
    print(f"rendered manifests in {out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
