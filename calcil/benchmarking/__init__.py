"""Measuring: :func:`benchmark` (``cc.benchmark``) times any operator, objective or function,
and :mod:`calcil.benchmarking.standard` is the standard set behind ``python -m calcil bench``.

The pieces, one per module: :mod:`~calcil.benchmarking.timing` (compile, analyse, time in
alternating blocks; shared with the pytest-benchmark suites under ``benchmarks/``),
:mod:`~calcil.benchmarking.bandwidth` (the device's copy bandwidth),
:mod:`~calcil.benchmarking.result` (tables, dicts and JSON).
"""

from calcil.benchmarking.bandwidth import DeviceBandwidth, device_bandwidth
from calcil.benchmarking.measure import benchmark
from calcil.benchmarking.result import BenchmarkResult, PartTiming, environment
from calcil.benchmarking.timing import CompiledCall, Timings, compile_call, time_calls

__all__ = [
    "BenchmarkResult",
    "CompiledCall",
    "DeviceBandwidth",
    "PartTiming",
    "Timings",
    "benchmark",
    "compile_call",
    "device_bandwidth",
    "environment",
    "time_calls",
]
