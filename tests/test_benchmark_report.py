"""benchmarks/report.py on hand-made pytest-benchmark JSON with known numbers, and a check
that every benchmark file still collects (the suites themselves run outside CI)."""

import doctest
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_report():
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "benchmarks/report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report = _load_report()


def row(group, impl, data, **extra):
    """One pytest-benchmark entry with raw timings ``data`` (seconds)."""
    stats = {"data": list(data), "median": sorted(data)[len(data) // 2], "min": min(data)}
    return {"group": group, "name": f"test[{group}-{impl}]", "extra_info": {"impl": impl, **extra},
            "stats": stats}  # fmt: skip


def write(path, rows):
    doc = {
        "datetime": "2026-11-24T12:00:00",
        "machine_info": {"cpu": {"brand_raw": "Test CPU", "count": 2}, "python_version": "3.11"},
        "benchmarks": rows,
    }
    path.write_text(json.dumps(doc))
    return path


def test_fit_exponent_doctests_and_n_log_n():
    assert doctest.testmod(report, raise_on_error=False).failed == 0
    # N log2 N at 2^16 and 2^24 elements: log(N2 log N2 / N1 log N1) / log(N2 / N1)
    want = math.log((2**24 * 24) / (2**16 * 16)) / math.log(2**8)
    assert report.n_log_n_exponent([2**16, 2**24]) == pytest.approx(want, rel=1e-12)


def test_fit_exponent_rejects_a_single_size():
    with pytest.raises(ValueError, match="two sizes or more"):
        report.fit_exponent([100], [1.0])
    with pytest.raises(ValueError, match="all sizes are equal"):
        report.fit_exponent([100, 100], [1.0, 2.0])


def test_table_pools_blocks_and_flags_ratios(tmp_path):
    path = write(
        tmp_path / "r.json",
        [
            # two alternating blocks of one pair: raw timings are pooled before the median
            row("conv-512", "calcil", [0.010, 0.012, 0.011]),
            row("conv-512", "jax", [0.010, 0.010]),
            row("conv-512", "calcil", [0.013, 0.014]),
            row("conv-512", "jax", [0.010, 0.010, 0.010]),
            row("conv-512", "calcil-logging", [0.020, 0.020, 0.020]),
            row("fft-512", "calcil", [0.002]),  # no baseline: "-"
        ],
    )
    groups, header = report.load([path])
    text, ratios = report.table(groups, threshold=1.05)
    # calcil pooled: median of [10, 12, 11, 13, 14] ms = 12 ms; jax 10 ms
    assert "| conv-512 | 12.00 | 10.00 | 1.200 **(> 1.05)** |" in text
    assert "| conv-512 (calcil-logging) | 20.00 | 10.00 | 2.000 **(> 1.05)** |" in text
    assert "| fft-512 | 2.00 | - | - |" in text
    assert ratios == [("conv-512", pytest.approx(1.2)), ("conv-512 (calcil-logging)", 2.0)]
    summary = report.summary(ratios, 1.05)
    assert summary.startswith(f"2 pairs; geometric-mean ratio {math.sqrt(2.4):.3f}; largest 2.000")
    assert "Test CPU (2 logical cores)" in report.describe(header)


def test_later_files_replace_a_groups_impl(tmp_path):
    first = write(tmp_path / "a.json", [row("g", "calcil", [0.02]), row("g", "jax", [0.01])])
    rerun = write(tmp_path / "b.json", [row("g", "calcil", [0.01])])
    groups, _ = report.load([first, rerun])
    _, ratios = report.table(groups)
    assert ratios == [("g", pytest.approx(1.0))]


def test_scaling_report_fits_known_exponents(tmp_path):
    rows = []
    for n in (256, 512, 1024):
        elements = n * n
        # calcil exactly ∝ N^1.5, jax exactly ∝ N, the pair ratio grows with size
        calcil, jax_ = 1e-9 * elements**1.5, 4e-6 * elements
        rows += [
            row(f"fam-{n}", "calcil", [calcil], ndim=2, elements=elements, peak_bytes=3 * 2**20),
            row(f"fam-{n}", "jax", [jax_], ndim=2, elements=elements, peak_bytes=5 * 2**20),
        ]
    rows.append(row("unrelated", "calcil", [1.0]))  # not <family>-<n>: ignored
    groups, _ = report.load([write(tmp_path / "s.json", rows)])
    text = report.scaling_report(groups)
    assert text.startswith("### fam")
    assert "unrelated" not in text
    assert "| calcil | 1.500 | 1.500 |" in text
    assert "| jax | 1.000 | 1.000 |" in text
    ref = report.n_log_n_exponent([256**2, 512**2, 1024**2])
    assert f"| N log N (reference) | {ref:.3f} |" in text
    # 1024²: calcil 1e-9 * 2^30 s = 1073.7 ms, jax 4e-6 * 2^20 s = 4194.3 ms; per element
    # 1024 and 4000 ns; ratio 2^30 / (4000 * 2^20) = 0.256
    assert "| 1024² | 1,048,576 | 1073.7 | 4194.3 | 1024.00 | 4000.00 | 0.256 |" in text
    assert "| 512² | 3.0 | 5.0 |" in text  # peak MiB, calcil then jax
    assert "calcil grows as N^1.50 over 256²→1024²" in text


def test_main_reports_missing_and_empty_files(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        report.main([str(tmp_path / "nothing.json")])
    assert exit_.value.code == 2
    assert "no such file" in capsys.readouterr().err
    empty = write(tmp_path / "empty.json", [])
    assert report.main([str(empty)]) == 1
    assert "no benchmarks found" in capsys.readouterr().err


def test_main_prints_both_reports(tmp_path, capsys):
    path = write(tmp_path / "r.json", [row("g-64", "calcil", [0.002]), row("g-64", "jax", [0.001])])
    assert report.main([str(path)]) == 0
    assert "| g-64 | 2.00 | 1.00 | 2.000 **(> 1.05)** |" in capsys.readouterr().out
    assert report.main([str(path), "--scaling"]) == 0
    assert "One size only: no exponent." in capsys.readouterr().out


def test_every_benchmark_file_collects():
    """Import errors or broken parametrisations in benchmarks/ surface here, not on a GPU."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "benchmarks"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    files = sorted((ROOT / "benchmarks").glob("test_*.py"))
    assert len(files) >= 7, files
    for path in files:
        assert f"benchmarks/{path.name}::" in out.stdout, path.name
