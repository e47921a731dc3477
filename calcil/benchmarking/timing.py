"""The timing core shared by :func:`calcil.benchmark`, ``python -m calcil bench`` and the
pytest-benchmark suites: compile once (timed), analyse the compiled program, call it and wait.

Three things make naive timings of JAX code wrong, and each is handled here:

- compilation: :func:`compile_call` compiles ahead of time and reports the seconds apart;
- asynchronous dispatch: every timed call ends with ``jax.block_until_ready``;
- drift (other processes, clocks, caches): :func:`time_calls` alternates the functions being
  compared in blocks, rotating their order, and pools each one's timings.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

__all__ = ["CompiledCall", "Timings", "compile_call", "program_memory", "time_calls"]


@dataclasses.dataclass(frozen=True)
class CompiledCall:
    """A function compiled for fixed arguments.

    ``call()`` runs the compiled program on those arguments and waits for the result.
    ``memory`` is :func:`program_memory` of the program; ``bytes_accessed`` the bytes XLA's
    cost analysis counts for one call (``None`` where the backend has no cost analysis);
    ``loops`` whether the program has a loop (XLA counts a loop's body once).
    """

    name: str
    call: Callable[[], Any]
    compile_seconds: float
    memory: dict[str, int]
    bytes_accessed: float | None
    loops: bool = False

    @property
    def bytes_moved(self) -> tuple[int, str]:
        """``(bytes, source)``: the bytes one call reads and writes, from XLA's cost
        analysis for straight-line programs, else the program's buffers (``arguments +
        outputs + temporaries``, each touched at least once): a lower bound."""
        if self.bytes_accessed is not None and self.bytes_accessed > 0 and not self.loops:
            return int(self.bytes_accessed), "xla cost analysis"
        m = self.memory
        buffers = m["argument_bytes"] + m["output_bytes"] + m["temp_bytes"]
        return buffers, "program buffers (lower bound)"


def program_memory(compiled) -> dict[str, int]:
    """The memory of a compiled program (bytes) from XLA's ``memory_analysis()``.

    ``peak_bytes = argument + output + temp - alias``: what the executable holds at once
    (XLA's own ``peak_memory_in_bytes`` is not used: on CPU it misses the temporaries).
    """
    stats = compiled.memory_analysis()
    parts = {
        "argument_bytes": int(stats.argument_size_in_bytes),
        "output_bytes": int(stats.output_size_in_bytes),
        "temp_bytes": int(stats.temp_size_in_bytes),
        "alias_bytes": int(stats.alias_size_in_bytes),
    }
    peak = parts["argument_bytes"] + parts["output_bytes"] + parts["temp_bytes"]
    return {"peak_bytes": peak - parts["alias_bytes"], **parts}


def _bytes_accessed(compiled) -> float | None:
    try:
        cost = compiled.cost_analysis()
    except Exception:  # backends without a cost model
        return None
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else None
    value = None if not cost else cost.get("bytes accessed")
    return None if value is None or not math.isfinite(value) else float(value)


def _check_outputs(name: str, out) -> None:
    leaves = jax.tree_util.tree_leaves(out)
    bad = [type(leaf).__name__ for leaf in leaves if not isinstance(leaf, jax.Array)]
    if not leaves or bad:
        raise TypeError(
            f"{name} must return JAX arrays (or a pytree of them) to be timed, since the "
            f"timer waits for them with jax.block_until_ready; it returned "
            f"{type(out).__name__}{f' holding {sorted(set(bad))}' if bad else ' with no arrays'}. "
            "Return the computed arrays, not Python values or None."
        )


def compile_call(fn: Callable, args: tuple, name: str = "fn") -> CompiledCall:
    """Compile ``fn(*args)`` ahead of time (``jax.jit`` unless ``fn`` is already jitted),
    time the compilation, run it once (the warm-up, outside any timing) and check that it
    returns arrays."""
    jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
    tic = time.perf_counter()
    try:
        lowered = jitted.lower(*args)
    except TypeError as error:
        if "not a valid JAX type" not in str(error):
            raise
        raise TypeError(
            f"{name} must return JAX arrays (or a pytree of them) to be timed, since the "
            f"timer waits for them with jax.block_until_ready; JAX could not trace its "
            f"output: {str(error).splitlines()[0]}"
        ) from None
    compiled = lowered.compile()
    seconds = time.perf_counter() - tic
    out = compiled(*args)
    _check_outputs(name, out)
    jax.block_until_ready(out)

    def call():
        return jax.block_until_ready(compiled(*args))

    loops = " while(" in compiled.as_text()
    return CompiledCall(
        name, call, seconds, program_memory(compiled), _bytes_accessed(compiled), loops
    )


@dataclasses.dataclass(frozen=True)
class Timings:
    """Seconds per call of each function, pooled over the blocks."""

    seconds: dict[str, list[float]]

    def median(self, name: str) -> float:
        return float(np.median(self.seconds[name]))

    def min(self, name: str) -> float:
        return float(np.min(self.seconds[name]))


def time_calls(
    calls: dict[str, Callable[[], Any]],
    repeats: int | None = None,
    min_time: float = 0.2,
    blocks: int = 4,
    max_repeats: int = 2000,
) -> Timings:
    """Time each ``calls[name]()`` (already compiled), waiting for its result with
    ``jax.block_until_ready`` inside the timing.

    The functions alternate in ``blocks`` blocks, the order rotated by one each block, and
    each block times ``repeats / blocks`` calls of each (at least one). ``repeats=None``
    takes, per function, enough calls for ``min_time`` seconds in all (from one warm call),
    between ``blocks`` and ``max_repeats``.
    """
    if not calls:
        raise ValueError("time_calls needs at least one function to time")
    blocks = max(1, int(blocks))
    per_block = {}
    for name, call in calls.items():
        if repeats is not None:
            total = max(1, int(repeats))
        else:
            tic = time.perf_counter()
            jax.block_until_ready(call())
            one = max(time.perf_counter() - tic, 1e-7)
            total = min(max_repeats, max(blocks, math.ceil(min_time / one)))
        per_block[name] = max(1, math.ceil(total / blocks))
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for b in range(blocks):
        for name in names[b % len(names) :] + names[: b % len(names)]:
            call, out = calls[name], seconds[name]
            for _ in range(per_block[name]):
                tic = time.perf_counter()
                jax.block_until_ready(call())
                out.append(time.perf_counter() - tic)
    return Timings(seconds)
