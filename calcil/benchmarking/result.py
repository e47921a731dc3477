"""What :func:`calcil.benchmark` measured: one row per timed part, a table, a dict, JSON."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform

import jax

__all__ = ["BenchmarkResult", "PartTiming", "environment"]

MIB = 2**20


def environment() -> dict:
    """The device, backend and versions a measurement was made with."""
    import calcil

    device = jax.devices()[0]
    name = str(device.device_kind)
    if device.platform == "cpu":  # jax names every CPU "cpu"
        name = f"CPU {_cpu_model() or platform.processor() or 'unknown'}, {os.cpu_count()} cores"
    return {
        "device": name,
        "platform": device.platform,
        "device_count": jax.device_count(),
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "jaxlib": _version("jaxlib"),
        "calcil": calcil.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
    }


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclasses.dataclass(frozen=True)
class PartTiming:
    """One timed computation (``forward``, ``adjoint``, ``gram``, ``grad`` or ``fn``).

    Times are seconds per call. ``bytes_moved`` is the lower bound of the bytes one call
    reads and writes (``bytes_source`` says where it comes from), ``bandwidth`` that divided
    by the median time (bytes/s) and ``bandwidth_fraction`` its share of the device's copy
    bandwidth (see :func:`~calcil.benchmarking.device_bandwidth`). ``ratio`` is the median
    over the baseline's median, where a baseline was timed beside it.
    """

    name: str
    median: float
    min: float
    calls: int
    compile_seconds: float
    peak_bytes: int
    bytes_moved: int
    bytes_source: str
    bandwidth: float
    bandwidth_fraction: float
    ratio: float | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class BenchmarkResult:
    """The parts timed by :func:`calcil.benchmark`, with what they ran on.

    ``parts`` maps each part's name to its :class:`PartTiming`; ``str(result)`` is a
    Markdown table, ``result.to_dict()`` / ``result.to_json()`` the same as data.
    """

    label: str
    parts: dict[str, PartTiming]
    environment: dict
    device_bandwidth: float
    baseline: PartTiming | None = None

    def __getitem__(self, name: str) -> PartTiming:
        return self.parts[name]

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "environment": self.environment,
            "device_bandwidth": self.device_bandwidth,
            "parts": {name: part.to_dict() for name, part in self.parts.items()},
            "baseline": None if self.baseline is None else self.baseline.to_dict(),
        }

    def to_json(self, path=None, indent: int = 2) -> str:
        """The result as JSON text; written to ``path`` as well when one is given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        return text

    def table(self) -> str:
        env = self.environment
        head = (
            f"{self.label} on {env['device']} ({env['backend']}), jax {env['jax']}; device "
            f"copy bandwidth {self.device_bandwidth / 1e9:.1f} GB/s\n\n"
        )
        lines = [
            "| part | median (ms) | min (ms) | calls | compile (s) | memory (MiB) | "
            "moved (MiB) | GB/s | of device | ratio |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        rows = list(self.parts.values())
        if self.baseline is not None:
            rows.append(self.baseline)
        for p in rows:
            ratio = "-" if p.ratio is None else f"{p.ratio:.2f}"
            lines.append(
                f"| {p.name} | {1e3 * p.median:.4g} | {1e3 * p.min:.4g} | {p.calls} | "
                f"{p.compile_seconds:.2f} | {p.peak_bytes / MIB:.1f} | "
                f"{p.bytes_moved / MIB:.1f} | {p.bandwidth / 1e9:.2f} | "
                f"{p.bandwidth_fraction:.0%} | {ratio} |"
            )
        return head + "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def _repr_markdown_(self) -> str:
        return self.table()
