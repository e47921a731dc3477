"""The device's own memory bandwidth, measured once per process with a large copy kernel.

The achieved bandwidth of a program (bytes it moves per second) means little alone; as a
fraction of what the device reaches on the simplest memory-bound kernel it says how far the
program is from the device's limit. The reference kernel is ``x = x + 1`` on a large float32
array, in place (the argument donated): it reads ``n`` bytes and writes ``n`` bytes, with no
arithmetic to speak of (XLA would turn a plain copy of an argument into no work at all). The
fastest of several calls is taken, as for a STREAM-style measurement.

In place, because a fresh output buffer of tens of MiB costs more than the copy on a CPU:
the allocator maps new pages for it on every call and the first write to each page faults
(on a 2-core EPYC, 4 GB/s with a fresh 256 MiB output against 45 GB/s in place). A
program with outputs that large shows that cost as a small fraction of the device's
bandwidth; on a GPU, buffers are pooled and the two agree.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp

__all__ = ["DeviceBandwidth", "device_bandwidth"]

DEFAULT_BYTES = {"cpu": 256 * 2**20, "gpu": 2 * 2**30, "tpu": 2 * 2**30}


@dataclasses.dataclass(frozen=True)
class DeviceBandwidth:
    """``bytes_per_second`` reached by the copy kernel on ``device`` (``2 nbytes`` moved per
    call, the fastest call of ``calls`` taking ``seconds``)."""

    device: str
    nbytes: int
    seconds: float
    calls: int

    @property
    def bytes_per_second(self) -> float:
        return 2 * self.nbytes / self.seconds

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "bytes_per_second": self.bytes_per_second}


def device_bandwidth(nbytes: int | None = None, calls: int = 20) -> DeviceBandwidth:
    """Measure (once per process and ``nbytes``) the default device's copy bandwidth.

    ``nbytes`` is the size of the copied array: by default 256 MiB on a CPU and 2 GiB on a
    GPU, well beyond the caches.

    Example:
        >>> import calcil as cc
        >>> bw = cc.benchmarking.device_bandwidth(nbytes=2**22, calls=3)
        >>> bw.bytes_per_second > 0
        True
    """
    if nbytes is None:
        nbytes = DEFAULT_BYTES.get(jax.devices()[0].platform, DEFAULT_BYTES["gpu"])
    return _measure(max(4, int(nbytes) // 4 * 4), max(1, int(calls)))


@functools.cache
def _measure(nbytes: int, calls: int) -> DeviceBandwidth:
    device = jax.devices()[0]
    n = nbytes // 4
    kernel = jax.jit(lambda a: a + 1, donate_argnums=0)
    x = jax.block_until_ready(kernel(jnp.zeros((n,), jnp.float32)))
    best = float("inf")
    for _ in range(calls):
        tic = time.perf_counter()
        x = jax.block_until_ready(kernel(x))
        best = min(best, time.perf_counter() - tic)
    del x
    return DeviceBandwidth(_device_name(device), nbytes, best, calls)


def _device_name(device) -> str:
    return f"{device.platform}:{device.device_kind}"
