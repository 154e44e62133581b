"""Command line, scheduling of interleaved repetitions, and the final report."""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._cases import (
    MAX_COUNT,
    MIN_COUNT,
    Case,
    Settings,
    ThrRun,
    calibrate,
    generate_curve_keys,
    has_taskset,
    run_lat,
    run_thr,
)
from benchmarks._job import IMPLS
from benchmarks._procs import WorkerError, python_can_import
from benchmarks._report import (
    Outcome,
    Results,
    curve_summary,
    evaluate_checks,
    render_checks,
    render_curve,
    render_errors,
    render_section,
)

DEFAULT_SIZES = (64, 1024, 65536, 1 << 20)
QUICK_SIZES = (64, 1 << 20)
WORKLOADS = ("thr", "inproc", "lat", "curve")
"""What runs by default: everything."""
SELECTORS = (*WORKLOADS, "curve-thr", "curve-lat")
"""``--only`` choices: ``curve`` is ``curve-thr`` (tcp PUSH→PULL) plus ``curve-lat`` (REQ/REP)."""
_IMPORT_NAMES = {"trimq": "trimq", "pyzmq": "zmq", "zmq.asyncio": "zmq.asyncio"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="trimq vs pyzmq vs zmq.asyncio: PUSH→PULL throughput, inproc, "
        "REQ/REP latency, and tcp PUSH→PULL and REQ/REP with CURVE next to NULL.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 0.4 s runs, tcp only, 64 B and 1 MiB (not for reporting)",
    )
    parser.add_argument(
        "--only",
        default=",".join(WORKLOADS),
        help="comma-separated subset of thr,inproc,lat,curve (default: all); "
        "curve = curve-thr (tcp PUSH→PULL, CURVE and NULL interleaved) + curve-lat (REQ/REP)",
    )
    parser.add_argument(
        "--sizes", help="tcp/ipc throughput sizes in bytes, also for curve-thr, e.g. 64,1024"
    )
    parser.add_argument("--transports", help="tcp/ipc throughput transports (default tcp,ipc)")
    parser.add_argument(
        "--impls", default=",".join(IMPLS), help="comma-separated subset of trimq,pyzmq,zmq.asyncio"
    )
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions (≥3)")
    parser.add_argument("--seconds", type=float, help="target length of one run (default 2.0)")
    parser.add_argument("--json", type=Path, help="also write all results as JSON here")
    return parser.parse_args(argv)


def _csv(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in items if t not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return items


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"--sizes wants comma-separated byte counts, not {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise SystemExit("--sizes must be positive byte counts")
    return sizes


def build_cases(args: argparse.Namespace) -> tuple[list[Case], set[Case]]:
    """Every case in report order, and the NULL anchors that only CURVE asked for.

    The order is the plain workloads, then each CURVE case after its NULL
    anchor. Anchors that no plain workload selected (``--only curve``) are
    shown in the CURVE table only.
    """
    only = set(_csv(args.only, SELECTORS, "workload"))
    if "curve" in only:
        only |= {"curve-thr", "curve-lat"}
    default_sizes = QUICK_SIZES if args.quick else DEFAULT_SIZES
    sizes = _sizes(args.sizes) if args.sizes else list(default_sizes)
    transports = _csv(
        args.transports or ("tcp" if args.quick else "tcp,ipc"), ("tcp", "ipc"), "transport"
    )
    cases = []
    if "thr" in only:
        cases += [Case("thr", t, s) for t in transports for s in sizes]
    if "inproc" in only:
        cases.append(Case("thr", "inproc", 64))
        if has_taskset():
            cases.append(Case("thr", "inproc", 64, pinned=True))
    if "lat" in only:
        cases.append(Case("lat", "tcp", 64))
    curve = []
    if "curve-thr" in only:
        curve += [Case("thr", "tcp", s, security="curve") for s in sizes]
    if "curve-lat" in only:
        curve.append(Case("lat", "tcp", 64, security="curve"))
    anchors_only = set()
    for case in curve:
        if case.null not in cases:
            cases.append(case.null)
            anchors_only.add(case.null)
        cases.append(case)
    return cases, anchors_only


def build_groups(cases: list[Case]) -> list[list[Case]]:
    """Cases whose repetitions are interleaved together, in running order.

    A CURVE case is grouped with its NULL anchor, so each repetition runs
    trimq NULL, trimq CURVE, pyzmq NULL, pyzmq CURVE, … back to back (the
    anchor runs there and nowhere else); every other case is a group alone,
    its implementations interleaved as before.
    """
    anchors = {c.null for c in cases if c.security != "null"}
    groups = [[c] for c in cases if c.security == "null" and c not in anchors]
    groups += [[c.null, c] for c in cases if c.security != "null"]
    return groups


def available_impls(requested: list[str], notes: list[str]) -> list[str]:
    impls = []
    for impl in requested:
        why = python_can_import(_IMPORT_NAMES[impl])
        if why is None:
            impls.append(impl)
        else:
            notes.append(f"{impl} skipped: cannot import it ({why})")
    return impls


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_thr_group(group: list[Case], impls: list[str], reps: int, settings: Settings) -> Results:
    """Calibrate every (case, implementation), then run interleaved timed repetitions.

    One repetition runs, for each implementation in turn, each case of the
    group: trimq NULL, trimq CURVE, pyzmq NULL, … for a CURVE group.
    """
    results: Results = {c.key: {impl: Outcome() for impl in impls} for c in group}
    plan: dict[tuple[str, str], tuple[int, float]] = {}
    for impl in impls:
        for case in group:
            try:
                plan[case.key, impl] = calibrate(impl, case, settings)
            except WorkerError as exc:
                results[case.key][impl].error = f"calibration: {exc}"
                log(f"[{case.label}] {impl} calibration FAILED: {exc}")
    for rep in range(reps):
        for impl in impls:
            for case in group:
                outcome = results[case.key][impl]
                if (case.key, impl) not in plan or outcome.error:
                    continue
                count, expected = plan[case.key, impl]
                try:
                    run = run_thr(impl, case, count, 10 + 5 * expected, settings)
                except WorkerError as exc:
                    outcome.error = f"repetition {rep + 1}: {exc}"
                    log(f"[{case.label}] {impl} rep {rep + 1} FAILED: {exc}")
                    continue
                plan[case.key, impl] = _resize(plan[case.key, impl], run, settings.seconds)
                outcome.primary.append(run.rate)
                outcome.secondary.append(run.mb_per_s)
                outcome.runs.append(
                    {
                        "count": run.count,
                        "seconds": run.seconds,
                        "msgs_per_s": run.rate,
                        "mb_per_s": run.mb_per_s,
                    }
                )
                log(
                    f"[{case.label}] {impl} rep {rep + 1}: {run.rate:,.0f} msgs/s "
                    f"({run.count:,} msgs in {run.seconds:.2f} s)"
                )
    return results


def _resize(plan: tuple[int, float], run: ThrRun, target: float) -> tuple[int, float]:
    """Re-size later repetitions from this one if it strayed far from the target length.

    Calibration runs are short and sometimes cold (first-touch page faults on
    1 MiB buffers), so a few misjudge the rate by 2x or more.
    """
    if 0.6 * target <= run.seconds <= 1.4 * target:
        return plan
    count = max(MIN_COUNT, min(MAX_COUNT, int(run.rate * target)))
    return count, count / run.rate


def run_lat_group(group: list[Case], impls: list[str], reps: int, settings: Settings) -> Results:
    """Interleaved latency repetitions: per repetition, each implementation, each case."""
    results: Results = {c.key: {impl: Outcome() for impl in impls} for c in group}
    for rep in range(reps):
        for impl in impls:
            for case in group:
                outcome = results[case.key][impl]
                if outcome.error:
                    continue
                try:
                    result = run_lat(impl, case, settings)
                except WorkerError as exc:
                    outcome.error = f"repetition {rep + 1}: {exc}"
                    log(f"[REQ/REP {case.label}] {impl} rep {rep + 1} FAILED: {exc}")
                    continue
                outcome.primary.append(result["median_us"])
                outcome.secondary.append(result["p99_us"])
                outcome.runs.append(result)
                log(
                    f"[REQ/REP {case.label}] {impl} rep {rep + 1}: median "
                    f"{result['median_us']:.1f} µs, p99 {result['p99_us']:.1f} µs "
                    f"({result['samples']:,} round trips)"
                )
    return results


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment(args: argparse.Namespace, settings: Settings, reps: int) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "versions": {d: _version(d) for d in ("trimq", "pyzmq", "trio")},
        "reps": reps,
        "target_seconds": settings.seconds,
        "latency_warmup": settings.lat_warmup,
        "argv": sys.argv[1:],
    }


def render(
    results: Results,
    cases: list[Case],
    impls: list[str],
    env: dict[str, Any],
    notes: list[str],
    anchors_only: set[Case],
) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    lines = [
        f"trimq benchmarks, {env['date']}: Python {env['python']}, {env['cpus']} CPUs, "
        f"load {env['loadavg_at_start'][0]:.2f} at start, {env['loadavg_at_end'][0]:.2f} at end; "
        f"{versions}",
        f"{env['reps']} interleaved repetitions of ~{env['target_seconds']:g} s each; "
        f"cells are median (min-max); ratios are of medians",
        *(f"note: {n}" for n in notes),
    ]
    plain = [c for c in cases if c.security == "null" and c not in anchors_only]
    thr = [c for c in plain if c.kind == "thr" and c.transport != "inproc"]
    inproc = [c for c in plain if c.kind == "thr" and c.transport == "inproc"]
    lat = [c for c in plain if c.kind == "lat"]
    lines += render_section(
        "PUSH→PULL throughput, separate sender and receiver processes, msgs/s "
        "(one send/recv call per message; trimq and zmq.asyncio await each one)",
        thr,
        results,
        impls,
        "MB/s",
    )
    lines += render_section(
        "inproc PUSH→PULL, one process: trimq/zmq.asyncio two tasks, pyzmq two threads; msgs/s",
        inproc,
        results,
        impls,
        "MB/s",
    )
    lines += render_section(
        "REQ/REP round trip, REP and REQ in separate processes, µs (lower is better): "
        "median of per-run medians; p99 row is the median of per-run p99s",
        lat,
        results,
        impls,
        "p99 µs",
    )
    lines += render_curve([c for c in cases if c.security == "curve"], results, impls)
    return lines


def to_json(
    results: Results,
    cases: list[Case],
    env: dict[str, Any],
    checks: list[dict[str, Any]],
    notes: list[str],
) -> dict[str, Any]:
    return {
        "environment": env,
        "notes": notes,
        "cases": [
            {
                "kind": c.kind,
                "transport": c.transport,
                "size": c.size,
                "pinned": c.pinned,
                "security": c.security,
                "label": c.label,
                "impls": {
                    impl: {
                        "median": o.median(),
                        "median_secondary": o.median_secondary(),
                        "runs": o.runs,
                        "error": o.error,
                    }
                    for impl, o in results.get(c.key, {}).items()
                },
            }
            for c in cases
        ],
        "curve": curve_summary([c for c in cases if c.security == "curve"], results),
        "checks": checks,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    notes: list[str] = []
    if args.reps < 3:
        notes.append(f"only {args.reps} repetitions: the method asks for at least 3")
    if args.quick:
        notes.append("--quick: short runs, for smoke testing only")
    cases, anchors_only = build_cases(args)
    if not has_taskset():
        notes.append("taskset not found: pinned inproc figures skipped")
    impls = available_impls(_csv(args.impls, IMPLS, "implementation"), notes)
    seconds = args.seconds or (0.4 if args.quick else 2.0)
    keys = None
    if any(c.security == "curve" for c in cases):
        keys = generate_curve_keys()  # once, here: no worker generates or times it
        notes.append(
            f"CURVE keys made once by {keys.source} in the harness and passed to every "
            "worker; the binding end (PULL/REP) is the CURVE server, no ZAP handler"
        )
    results: Results = {}
    with tempfile.TemporaryDirectory(prefix="trimq-bench-") as ipc_dir:
        settings = Settings(
            seconds=seconds,
            lat_warmup=200 if args.quick else 1000,
            ipc_dir=Path(ipc_dir),
            curve_keys=keys,
        )
        env = environment(args, settings, args.reps)
        for group in build_groups(cases):
            run_group = run_lat_group if group[0].kind == "lat" else run_thr_group
            log(f"== {group[0].kind} " + " + ".join(c.label for c in group))
            results.update(run_group(group, impls, args.reps, settings))
        env["loadavg_at_end"] = os.getloadavg()
    checks = evaluate_checks(results)
    lines = render(results, cases, impls, env, notes, anchors_only) + render_checks(checks)
    lines += render_errors(results)
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(to_json(results, cases, env, checks, notes), indent=2))
        print(f"\nJSON written to {args.json}")
    return 0
