"""Pair calcil and hand-written rows of a pytest-benchmark JSON file into a Markdown table.

Usage::

    python benchmarks/report.py benchmarks/results.json [more.json ...]
        [--candidate calcil] [--baseline jax] [--threshold 1.05] [--stat median]
    python benchmarks/report.py --scaling benchmarks/results-scaling.json

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

``--scaling`` reports how cost grows with size instead (``test_scaling.py``). Groups named
``<family>-<n>`` that differ only by the edge length ``n`` form a family; for each family
it prints, per size and impl, the ``--stat`` time, the time per element (ns) and the peak
memory, the candidate's ratio to every other impl, and (with two sizes or more) the exponent
``p`` in ``time ∝ elements^p``: a least-squares fit on log-log over all sizes and the slope
between the two largest, next to what ``N log2 N`` would give over the same sizes. Elements
are ``extra_info["elements"]``, else ``size ** extra_info["ndim"]`` (2D when neither is
recorded).
"""

from __future__ import annotations

import argparse
import json
import math
import re
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


# ---------------------------------------------------------------------- scaling (--scaling)
SUPERSCRIPT = {1: "", 2: "²", 3: "³"}


def fit_exponent(elements: list[float], times: list[float]) -> float:
    """The slope ``p`` of the least-squares line through ``(log elements, log times)``:
    ``time ∝ elements^p``. Two points give the exact slope between them.

    >>> fit_exponent([1e3, 1e4, 1e5], [2.0, 20.0, 200.0])
    1.0
    >>> round(fit_exponent([4, 16], [1.0, 8.0]), 6)
    1.5
    """
    if len(elements) != len(times) or len(elements) < 2:
        raise ValueError(f"need two sizes or more, got {len(elements)} sizes, {len(times)} times")
    xs = [math.log(e) for e in elements]
    ys = [math.log(t) for t in times]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("all sizes are equal: no exponent to fit")
    return round(sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx, 12)


def n_log_n_exponent(elements: list[float]) -> float:
    """The exponent :func:`fit_exponent` gives for times exactly ``N log2 N`` at ``elements``:
    an FFT's ideal growth seen through the same fit (a bit above 1)."""
    return fit_exponent(elements, [e * math.log2(e) for e in elements])


def scaling_families(groups: dict[str, dict[str, list[dict]]]) -> dict[str, dict]:
    """``{family: {"sizes": {n: {impl: rows}}, "ndim": d, "elements": {n: N}}}`` from groups
    named ``<family>-<n>``; families keep the order in which they were run, sizes ascend."""
    families: dict[str, dict] = {}
    for group, impls in groups.items():
        match = re.fullmatch(r"(?P<family>.+)-(?P<n>\d+)", group)
        if not match:
            continue
        n = int(match["n"])
        extra = next((r.get("extra_info", {}) for rows in impls.values() for r in rows), {})
        ndim = int(extra.get("ndim", 2))
        family = families.setdefault(match["family"], {"sizes": {}, "ndim": ndim, "elements": {}})
        family["sizes"][n] = impls
        family["elements"][n] = int(extra.get("elements") or n**ndim)
    for family in families.values():
        family["sizes"] = dict(sorted(family["sizes"].items()))
    return families


def _size_label(n: int, ndim: int) -> str:
    return f"{n}{SUPERSCRIPT.get(ndim, f'^{ndim}')}"


def _peak_mib(rows: list[dict] | None) -> float | None:
    peaks = [r["extra_info"]["peak_bytes"] for r in rows or [] if "peak_bytes" in r["extra_info"]]
    return max(peaks) / 2**20 if peaks else None


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def scaling_report(
    groups: dict[str, dict[str, list[dict]]], candidate: str = "calcil", stat: str = "median"
) -> str:
    """Markdown: per family, a table over sizes and impls, the fitted exponents, a summary."""
    out = []
    for name, family in scaling_families(groups).items():
        sizes, ndim, elements = family["sizes"], family["ndim"], family["elements"]
        impls: list[str] = []
        for rows in sizes.values():
            impls += [i for i in rows if i not in impls]
        impls.sort(key=lambda i: i != candidate)  # the candidate first, then as run
        others = [i for i in impls if i != candidate] if candidate in impls else []
        times = {n: {i: statistic(rows.get(i), stat) for i in impls} for n, rows in sizes.items()}

        out.append(f"### {name}")
        out.append("")
        head = ["size", "elements"]
        head += [f"{i} {stat} (ms)" for i in impls]
        head += [f"{i} ns/element" for i in impls]
        head += [f"{candidate}/{o}" for o in others]
        out.append("| " + " | ".join(head) + " |")
        out.append("|---|" + "---:|" * (len(head) - 1))
        for n in sizes:
            t, N = times[n], elements[n]
            cells = [_size_label(n, ndim), f"{N:,}"]
            cells += [_ms(t[i]) for i in impls]
            cells += [_number(None if t[i] is None else 1e9 * t[i] / N) for i in impls]
            for o in others:
                ok = t[candidate] is not None and t[o]
                cells.append(_number(t[candidate] / t[o] if ok else None, 3))
            out.append("| " + " | ".join(cells) + " |")
        out.append("")

        if len(sizes) < 2:
            out.append("One size only: no exponent.")
            out.append("")
            continue
        first, last = next(iter(sizes)), list(sizes)[-1]
        span = f"{_size_label(first, ndim)}→{_size_label(last, ndim)}"
        prev = list(sizes)[-2]
        tail = f"{_size_label(prev, ndim)}→{_size_label(last, ndim)}"
        out.append(f"| time ∝ elements^p | p, fit {span} | p, {tail} |")
        out.append("|---|---:|---:|")
        exponents = {}
        for i in impls:
            known = [n for n in sizes if times[n][i]]
            if len(known) < 2:
                continue
            p_all = fit_exponent([elements[n] for n in known], [times[n][i] for n in known])
            p_tail = fit_exponent(
                [elements[n] for n in known[-2:]], [times[n][i] for n in known[-2:]]
            )
            exponents[i] = (p_all, p_tail)
            out.append(f"| {i} | {p_all:.3f} | {p_tail:.3f} |")
        ns = list(sizes)
        ref_all = n_log_n_exponent([elements[n] for n in ns])
        ref_tail = n_log_n_exponent([elements[n] for n in ns[-2:]])
        out.append(f"| N log N (reference) | {ref_all:.3f} | {ref_tail:.3f} |")
        out.append("")

        peaks = {n: {i: _peak_mib(rows.get(i)) for i in impls} for n, rows in sizes.items()}
        if any(v is not None for row in peaks.values() for v in row.values()):
            out.append("| size | " + " | ".join(f"{i} peak (MiB)" for i in impls) + " |")
            out.append("|---|" + "---:|" * len(impls))
            for n in sizes:
                cells = [_number(peaks[n][i], 1) for i in impls]
                out.append(f"| {_size_label(n, ndim)} | " + " | ".join(cells) + " |")
            out.append("")

        if candidate in exponents:
            p_all, p_tail = exponents[candidate]
            words = (
                f"{candidate} grows as N^{p_all:.2f} over {span} "
                f"(N^{p_tail:.2f} over {tail}; linear is N^1, N log N fits as N^{ref_all:.2f})"
            )
            t = times[last]
            ratios = [
                f"{candidate}/{o} {t[candidate] / t[o]:.2f}x"
                for o in others
                if t[candidate] is not None and t[o]
            ]
            if ratios:
                words += f"; at {_size_label(last, ndim)}: " + ", ".join(ratios)
            out.append(words + ".")
            out.append("")
    return "\n".join(out).rstrip() if out else "No groups named <family>-<size>."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="pytest-benchmark JSON files")
    parser.add_argument("--candidate", default="calcil", help="impl in the numerator")
    parser.add_argument("--baseline", default="jax", help="impl in the denominator")
    parser.add_argument("--threshold", type=float, default=1.05, help="flag ratios above this")
    parser.add_argument("--stat", choices=sorted(STATS), default="median", help="statistic")
    parser.add_argument(
        "--scaling", action="store_true", help="growth with size per family (test_scaling.py)"
    )
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.paths if not p.is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)} (run pytest with --benchmark-json first)")
    groups, header = load(args.paths)
    if not groups:
        print("no benchmarks found in " + ", ".join(map(str, args.paths)), file=sys.stderr)
        return 1
    if args.scaling:
        print(describe(header))
        print()
        print(scaling_report(groups, args.candidate, args.stat))
        return 0
    text, ratios = table(groups, args.candidate, args.baseline, args.threshold, args.stat)
    print(describe(header))
    print()
    print(text)
    print()
    print(summary(ratios, args.threshold))
    return 0


if __name__ == "__main__":
    sys.exit(main())
