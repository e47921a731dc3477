"""Pair calcil and hand-written rows of a pytest-benchmark JSON file into a Markdown table.

Usage::

    python benchmarks/report.py benchmarks/results.json [more.json ...]
        [--candidate calcil] [--baseline jax] [--threshold 1.05] [--stat median]

Rows are matched by ``benchmark.group``; ``extra_info["impl"]`` says which side a row is
(by default ``"calcil"`` is the candidate and ``"jax"`` the baseline). Several rows of one
file with the same group and impl (a pair measured in alternating blocks) are pooled: their
raw timings are concatenated before the median is taken. For every group the table gives
both medians in milliseconds and the ratio candidate/baseline; ratios above ``--threshold``
are flagged. Later files replace earlier ones for the same group and impl, so a rerun of a
suspicious pair (``pytest benchmarks -k ... --benchmark-json=rerun.json``) can be laid over
a full run. Groups keep the order in which they were run; groups with only one side show
``-`` for the other. Any suite that sets ``group`` and ``extra_info["impl"]`` (operators,
solvers, priors) reports with this script unchanged. A variant of the candidate, an impl
named ``<candidate>-<variant>`` (``calcil-logging``), gets its own row ``group (impl)``
against the same baseline; compare it with the candidate itself by
``--candidate calcil-logging --baseline calcil``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

STATS = {"median": statistics.median, "mean": statistics.fmean, "min": min}


def load(paths: list[Path]) -> tuple[dict[str, dict[str, list[dict]]], dict]:
    """``{group: {impl: [rows]}}`` over all files (later files replace a group's impl rows),
    and the first file's header (date, machine)."""
    groups: dict[str, dict[str, list[dict]]] = {}
    header: dict = {}
    for path in paths:
        data = json.loads(path.read_text())
        header = header or {
            "datetime": data.get("datetime", ""),
            "machine": data.get("machine_info", {}),
            "extra": next((b.get("extra_info", {}) for b in data.get("benchmarks", [])), {}),
        }
        fresh: dict[str, dict[str, list[dict]]] = {}
        for row in data.get("benchmarks", []):
            group = row.get("group") or row["name"]
            impl = row.get("extra_info", {}).get("impl", "?")
            fresh.setdefault(group, {}).setdefault(impl, []).append(row)
        for group, impls in fresh.items():
            groups.setdefault(group, {}).update(impls)
    return groups, header


def statistic(rows: list[dict] | None, stat: str = "median") -> float | None:
    """``stat`` (seconds) of the pooled raw timings of ``rows``; without raw data (saved
    without ``data``), the median of the rows' own values."""
    if not rows:
        return None
    data = [t for row in rows for t in row.get("stats", {}).get("data") or []]
    if data:
        return STATS[stat](data)
    values = [row["stats"][stat] for row in rows if stat in row.get("stats", {})]
    return statistics.median(values) if values else None


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = 1e3 * seconds
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


def table(
    groups: dict[str, dict[str, list[dict]]],
    candidate: str = "calcil",
    baseline: str = "jax",
    threshold: float = 1.05,
    stat: str = "median",
) -> tuple[str, list[tuple[str, float]]]:
    """The Markdown table and the list of ``(group, ratio)`` for complete pairs."""
    lines = [
        f"| group | {candidate} {stat} (ms) | {baseline} {stat} (ms) | "
        f"ratio {candidate}/{baseline} |",
        "|---|---:|---:|---:|",
    ]
    ratios = []
    for group, rows in groups.items():
        base = statistic(rows.get(baseline), stat)
        # The candidate, then its variants (impl "<candidate>-<variant>", e.g. calcil-logging)
        # against the same baseline, each on its own row.
        variants = [i for i in rows if i.startswith(f"{candidate}-") and i != baseline]
        for impl in [candidate, *variants]:
            label = group if impl == candidate else f"{group} ({impl})"
            cand = statistic(rows.get(impl), stat)
            if cand is not None and base is not None and base > 0:
                ratio = cand / base
                ratios.append((label, ratio))
                flag = f" **(> {threshold:.2f})**" if ratio > threshold else ""
                text = f"{ratio:.3f}{flag}"
            else:
                text = "-"
            lines.append(f"| {label} | {_ms(cand)} | {_ms(base)} | {text} |")
    return "\n".join(lines), ratios


def summary(ratios: list[tuple[str, float]], threshold: float) -> str:
    if not ratios:
        return "No complete pairs."
    geo = math.exp(sum(math.log(r) for _, r in ratios) / len(ratios))
    worst_group, worst = max(ratios, key=lambda gr: gr[1])
    over = [g for g, r in ratios if r > threshold]
    text = (
        f"{len(ratios)} pairs; geometric-mean ratio {geo:.3f}; "
        f"largest {worst:.3f} ({worst_group}); {len(over)} above {threshold:.2f}"
    )
    return text + (f": {', '.join(over)}." if over else ".")


def describe(header: dict) -> str:
    machine, extra = header.get("machine", {}), header.get("extra", {})
    cpu = machine.get("cpu", {})
    parts = [header.get("datetime", "")[:10]]
    if cpu:
        parts.append(f"{cpu.get('brand_raw', 'CPU')} ({cpu.get('count', '?')} logical cores)")
    if "jax_version" in extra:
        parts.append(f"jax {extra['jax_version']}")
    if "backend" in extra:
        parts.append(f"backend {extra['backend']}")
    if machine.get("python_version"):
        parts.append(f"Python {machine['python_version']}")
    return "Measured " + ", ".join(p for p in parts if p) + "."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="pytest-benchmark JSON files")
    parser.add_argument("--candidate", default="calcil", help="impl in the numerator")
    parser.add_argument("--baseline", default="jax", help="impl in the denominator")
    parser.add_argument("--threshold", type=float, default=1.05, help="flag ratios above this")
    parser.add_argument("--stat", choices=sorted(STATS), default="median", help="statistic")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.paths if not p.is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)} (run pytest with --benchmark-json first)")
    groups, header = load(args.paths)
    if not groups:
        print("no benchmarks found in " + ", ".join(map(str, args.paths)), file=sys.stderr)
        return 1
    text, ratios = table(groups, args.candidate, args.baseline, args.threshold, args.stat)
    print(describe(header))
    print()
    print(text)
    print()
    print(summary(ratios, args.threshold))
    return 0


if __name__ == "__main__":
    sys.exit(main())
