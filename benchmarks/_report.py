"""Collecting repetitions, and printing them as tables with acceptance checks."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from benchmarks._cases import Case

RATIO_AGAINST = ("pyzmq", "zmq.asyncio")


@dataclass
class Outcome:
    """All repetitions of one implementation on one case."""

    primary: list[float] = field(default_factory=list)
    """Throughput: msgs/s. Latency: median round trip in µs."""
    secondary: list[float] = field(default_factory=list)
    """Throughput: MB/s (10⁶ bytes). Latency: p99 round trip in µs."""
    runs: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def median(self) -> float | None:
        return statistics.median(self.primary) if self.primary else None

    def median_secondary(self) -> float | None:
        return statistics.median(self.secondary) if self.secondary else None


Results = dict[str, dict[str, Outcome]]
"""case key → implementation → outcome."""


def fmt_num(value: float) -> str:
    """Three significant digits with k/M suffixes: 1.52M, 880k, 27.1k, 89.4."""
    for suffix, scale in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return _sig3(value / scale) + suffix
    return _sig3(value)


def _sig3(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(outcome: Outcome | None) -> str:
    if outcome is None:
        return "-"
    if not outcome.primary:
        return "ERROR" if outcome.error else "-"
    mid = statistics.median(outcome.primary)
    cell = f"{fmt_num(mid)} ({fmt_num(min(outcome.primary))}-{fmt_num(max(outcome.primary))})"
    return cell + ("!" if outcome.error else "")


def ratio(results: Results, case: Case, other: str) -> float | None:
    row = results.get(case.key, {})
    mine, theirs = row.get("trimq"), row.get(other)
    a = mine.median() if mine else None
    b = theirs.median() if theirs else None
    if a is None or b is None or b == 0:
        return None
    return a / b


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return lines


def _ratio_cells(results: Results, case: Case) -> list[str]:
    cells = []
    for other in RATIO_AGAINST:
        value = ratio(results, case, other)
        cells.append("n/a" if value is None else f"{value:.2f}x")
    return cells


def _secondary_cells(row: dict[str, Outcome], impls: Iterable[str]) -> list[str]:
    cells = []
    for impl in impls:
        outcome = row.get(impl)
        value = outcome.median_secondary() if outcome else None
        cells.append("-" if value is None else fmt_num(value))
    return cells


def render_section(
    title: str, cases: list[Case], results: Results, impls: list[str], secondary: str
) -> list[str]:
    """One table: a primary row per case and a secondary row beneath it."""
    if not cases:
        return []
    header = ["workload", *impls, *(f"trimq÷{o}" for o in RATIO_AGAINST)]
    rows: list[list[str]] = []
    for case in cases:
        row = results.get(case.key, {})
        rows.append([case.label, *(_cell(row.get(i)) for i in impls), *_ratio_cells(results, case)])
        rows.append([f"  {secondary}", *_secondary_cells(row, impls), "", ""])
    return ["", title, *_table(header, rows)]


@dataclass(frozen=True)
class Check:
    """One acceptance criterion from the project's issue."""

    text: str
    case: Case
    measure: Callable[[Results, Case], float | None]
    passes: Callable[[float], bool]
    unit: str


def _trimq_rate(results: Results, case: Case) -> float | None:
    outcome = results.get(case.key, {}).get("trimq")
    return outcome.median() if outcome else None


CHECKS = (
    Check(
        "tcp 64 B PUSH→PULL: trimq ≥ 0.5x pyzmq (goal 1.0x)",
        Case("thr", "tcp", 64),
        lambda r, c: ratio(r, c, "pyzmq"),
        lambda v: v >= 0.5,
        "x",
    ),
    Check(
        "REQ/REP 64 B tcp: trimq median ≤ 1.3x pyzmq",
        Case("lat", "tcp", 64),
        lambda r, c: ratio(r, c, "pyzmq"),
        lambda v: v <= 1.3,
        "x",
    ),
    Check(
        "tcp 1 MiB PUSH→PULL: trimq ≥ 0.5x pyzmq",
        Case("thr", "tcp", 1 << 20),
        lambda r, c: ratio(r, c, "pyzmq"),
        lambda v: v >= 0.5,
        "x",
    ),
    Check(
        "inproc 64 B PUSH→PULL: trimq ≥ 1 M msgs/s",
        Case("thr", "inproc", 64),
        _trimq_rate,
        lambda v: v >= 1e6,
        " msgs/s",
    ),
)


def evaluate_checks(results: Results) -> list[dict[str, Any]]:
    out = []
    for check in CHECKS:
        value = check.measure(results, check.case)
        verdict = "n/a" if value is None else ("PASS" if check.passes(value) else "FAIL")
        out.append({"check": check.text, "value": value, "unit": check.unit, "verdict": verdict})
    return out


def render_checks(checks: list[dict[str, Any]]) -> list[str]:
    lines = ["", "Acceptance checks (from the project's issue; ratios of medians from this run)"]
    for c in checks:
        value = c["value"]
        if value is None:
            shown = "not measured"
        elif c["unit"] == "x":
            shown = f"{value:.2f}x"
        else:
            shown = fmt_num(value) + c["unit"]
        lines.append(f"  [{c['verdict']:>4}] {c['check']}: {shown}")
    return lines


def render_errors(results: Results) -> list[str]:
    lines = []
    for key, row in results.items():
        for impl, outcome in row.items():
            if outcome.error:
                lines.append(f"  [{key}] {impl}: {outcome.error}")
    return ["", "Errors (cells marked ERROR or ! are affected):", *lines] if lines else []


def curve_cost(results: Results, case: Case, impl: str) -> float | None:
    """``impl``'s CURVE median over its NULL median (from the same interleaved run)."""
    curve = results.get(case.key, {}).get(impl)
    null = results.get(case.null.key, {}).get(impl)
    a = curve.median() if curve else None
    b = null.median() if null else None
    if a is None or b is None or b == 0:
        return None
    return a / b


def paired_costs(results: Results, case: Case, impl: str) -> list[float]:
    """CURVE ÷ NULL per repetition: the two ran back to back, so each pair shares conditions.

    Both lists are prefixes of the repetition sequence (a failed cell takes no
    more repetitions), so pairing by position pairs the same repetition.
    """
    curve = results.get(case.key, {}).get(impl)
    null = results.get(case.null.key, {}).get(impl)
    if curve is None or null is None:
        return []
    return [c / n for c, n in zip(curve.primary, null.primary, strict=False) if n]


def _cost_cell(results: Results, case: Case, impl: str) -> str:
    value = curve_cost(results, case, impl)
    if value is None:
        return "n/a"
    paired = paired_costs(results, case, impl)
    spread = f" ({min(paired):.2f}-{max(paired):.2f})" if len(paired) > 1 else ""
    return f"{value:.2f}x{spread}"


def render_curve(cases: list[Case], results: Results, impls: list[str]) -> list[str]:
    """CURVE cases beside their NULL anchors, with CURVE÷NULL per implementation.

    Per case: a CURVE row (cells and trimq ratios), a NULL row, the cost row
    (ratio of medians; in brackets the range of the per-repetition ratios,
    NULL and CURVE having run back to back), and the secondary figure; then
    one sentence per case with the numbers the CURVE work is judged on.
    """
    if not cases:
        return []
    header = ["workload", *impls, *(f"trimq÷{o}" for o in RATIO_AGAINST)]
    lines: list[str] = []
    for kind, title, unit, secondary in (
        (
            "thr",
            "CURVE vs NULL, tcp PUSH→PULL, separate processes, msgs/s; each repetition runs "
            "one implementation's NULL and CURVE back to back, then the next implementation's",
            "msgs/s",
            "MB/s",
        ),
        (
            "lat",
            "CURVE vs NULL, REQ/REP round trip over tcp, separate processes, µs (lower is "
            "better; CURVE÷NULL above 1 is CURVE's cost); NULL and CURVE interleaved",
            "µs",
            "p99 µs",
        ),
    ):
        chosen = [c for c in cases if c.kind == kind]
        if not chosen:
            continue
        rows: list[list[str]] = []
        for case in chosen:
            curve_row = results.get(case.key, {})
            null_row = results.get(case.null.key, {})
            rows.append(
                [
                    case.label,
                    *(_cell(curve_row.get(i)) for i in impls),
                    *_ratio_cells(results, case),
                ]
            )
            rows.append(
                [
                    "  NULL",
                    *(_cell(null_row.get(i)) for i in impls),
                    *_ratio_cells(results, case.null),
                ]
            )
            rows.append(["  CURVE÷NULL", *(_cost_cell(results, case, i) for i in impls), "", ""])
            rows.append([f"  CURVE {secondary}", *_secondary_cells(curve_row, impls), "", ""])
            rows.append([f"  NULL {secondary}", *_secondary_cells(null_row, impls), "", ""])
        lines += ["", title, *_table(header, rows)]
        lines += ["", f"CURVE in short ({unit}; ratios of medians from this run):"]
        lines += [f"  {_curve_sentence(results, case, impls, unit)}" for case in chosen]
    return lines


def _median_text(results: Results, case: Case, impl: str, unit: str) -> str:
    outcome = results.get(case.key, {}).get(impl)
    value = outcome.median() if outcome else None
    if value is None:
        return f"{impl} {case.security.upper()} " + ("ERROR" if outcome and outcome.error else "-")
    return f"{impl} {case.security.upper()} {fmt_num(value)} {unit}"


def _curve_sentence(results: Results, case: Case, impls: list[str], unit: str) -> str:
    base = case.label.removesuffix(" CURVE")
    what = "REQ/REP " + base if case.kind == "lat" else base
    parts = [_median_text(results, case, i, unit) for i in ("trimq", "pyzmq") if i in impls]
    vs = ratio(results, case, "pyzmq")
    head = ", ".join(parts)
    if vs is not None:
        head += f", trimq÷pyzmq {vs:.2f}x"
    costs = []
    for impl in impls:
        value = curve_cost(results, case, impl)
        shown = "n/a" if value is None else f"{value:.2f}x"
        costs.append(f"{impl} CURVE = {shown} {impl} NULL")
    return f"{what}: {head}; " + ", ".join(costs)


def curve_summary(cases: list[Case], results: Results) -> list[dict[str, Any]]:
    """The CURVE figures for ``--json``: per case, each implementation's CURVE and NULL."""
    out = []
    for case in cases:
        impls = sorted(set(results.get(case.key, {})) | set(results.get(case.null.key, {})))
        per_impl = {}
        for impl in impls:
            curve = results.get(case.key, {}).get(impl)
            null = results.get(case.null.key, {}).get(impl)
            per_impl[impl] = {
                "curve_median": curve.median() if curve else None,
                "null_median": null.median() if null else None,
                "curve_over_null": curve_cost(results, case, impl),
                "curve_over_null_per_rep": paired_costs(results, case, impl),
                "curve_error": curve.error if curve else None,
                "null_error": null.error if null else None,
            }
        out.append(
            {
                "kind": case.kind,
                "transport": case.transport,
                "size": case.size,
                "label": case.label,
                "unit": "msgs/s" if case.kind == "thr" else "µs (median round trip)",
                "curve_key": case.key,
                "null_key": case.null.key,
                "impls": per_impl,
                "trimq_curve_over": {o: ratio(results, case, o) for o in RATIO_AGAINST},
                "trimq_null_over": {o: ratio(results, case.null, o) for o in RATIO_AGAINST},
            }
        )
    return out
