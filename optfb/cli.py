"""The `optfb` command: run and evaluate experiments locally, and talk to an optfb server.

    optfb run SPEC --out DIR              meta-train, evaluate, write feedback + metrics + summary
    optfb eval SPEC --feedback FILE --steps M   inner training with saved B for any horizon M
    optfb presets [NAME]                  list the built-in specs, or print one
    optfb schema                          the spec's JSON Schema
    optfb submit|status|wait|download|jobs    the server client (optfb.client_cli)

SPEC is a .json / .yaml file or a preset name. Exit codes: 0 ok, 1 the run failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from optfb import client_cli
from optfb.spec import ExperimentSpec, format_validation_error
from optfb.spec.presets import PRESETS


class UsageError(Exception):
    """Bad input from the command line: printed without a traceback, exit code 2."""


def _spec(source: str) -> ExperimentSpec:
    try:
        return ExperimentSpec.model_validate(client_cli.load_spec(source))
    except client_cli.ClientError as exc:
        raise UsageError(str(exc)) from exc
    except ValidationError as exc:
        raise UsageError(f"invalid spec {source}: {format_validation_error(exc)}") from exc


def _progress(step: int, total: int, metrics: dict[str, Any], began: float) -> None:
    width = 30
    filled = round(width * step / max(total, 1))
    eta = (time.monotonic() - began) / step * (total - step)
    bar = "#" * filled + "." * (width - filled)
    line = f"\r[{bar}] {step}/{total} meta_loss {metrics['meta_loss']:.5g} eta {eta:.0f}s"
    sys.stderr.write(line + ("\n" if step == total else ""))
    sys.stderr.flush()


def _run(args: argparse.Namespace) -> int:
    import optfb
    from optfb.summary import headline

    spec = _spec(args.spec)
    if args.steps is not None:
        data = spec.model_dump()
        data["outer"]["steps"] = args.steps
        try:
            spec = ExperimentSpec.model_validate(data)
        except ValidationError as exc:
            raise UsageError(f"--steps {args.steps}: {format_validation_error(exc)}") from exc
    began = time.monotonic()
    progress = None if args.quiet else (lambda s, t, m: _progress(s, t, m, began))
    try:
        result = optfb.run_experiment(spec, on_progress=progress)
    except optfb.NonFiniteError as exc:
        print(f"optfb run: {exc}", file=sys.stderr)
        return 1
    folder = result.save(args.out)
    print(json.dumps({"out": str(folder), "mean_loss": headline(result.summary)}, indent=1))
    return 0


def _eval(args: argparse.Namespace) -> int:
    import torch

    import optfb
    from optfb.io import load_feedback

    spec = _spec(args.spec)
    if args.feedback is None:
        feedback = None
    else:
        try:
            feedback = {k: torch.from_numpy(v) for k, v in load_feedback(Path(args.feedback)).items()}
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot load feedback {args.feedback}: {exc}") from exc
    seeds = list(range(args.seeds if args.seeds is not None else spec.eval.seeds))
    try:
        stats = optfb.evaluate(spec, feedback, steps=args.steps, seeds=seeds)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if not args.curve:
        stats = {k: v for k, v in stats.items() if not k.startswith("loss_curve")}
    print(json.dumps(stats, indent=1))
    return 0


def _presets(args: argparse.Namespace) -> int:
    if args.name:
        if args.name not in PRESETS:
            raise UsageError(f"unknown preset {args.name!r}; choose one of {', '.join(sorted(PRESETS))}")
        print(json.dumps(PRESETS[args.name], indent=1))
        return 0
    for name, spec in PRESETS.items():
        s = ExperimentSpec.model_validate(spec)
        print(f"{name:28s} {s.task.kind:18s} {'-'.join(map(str, s.sizes)):14s} {s.feedback.mode}")
    return 0


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(ExperimentSpec.model_json_schema(), indent=1))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="optfb", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="meta-train B locally and write the results to a folder")
    p.add_argument("spec", help="a .json / .yaml spec file or a preset name")
    p.add_argument("--out", required=True, help="folder for feedback.safetensors/.npz, metrics, summary")
    p.add_argument("--steps", type=int, help="override outer.steps")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)

    p = sub.add_parser("eval", help="inner training with given B (or backprop) for any number of steps")
    p.add_argument("spec")
    p.add_argument("--feedback", help=".safetensors / .npz / .json with B2..BL; omit for backprop")
    p.add_argument("--steps", type=int, required=True, help="inner steps M")
    p.add_argument("--seeds", type=int, help="number of evaluation seeds (default: the spec's)")
    p.add_argument("--curve", action="store_true", help="include the loss curve")
    p.set_defaults(func=_eval)

    p = sub.add_parser("presets", help="list the built-in specs, or print one")
    p.add_argument("name", nargs="?")
    p.set_defaults(func=_presets)

    p = sub.add_parser("schema", help="print the spec's JSON Schema")
    p.set_defaults(func=_schema)

    client_cli.register(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"optfb {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
