"""``cc.benchmark``: time an operator, objective or function on the current device."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from calcil.benchmarking.bandwidth import device_bandwidth
from calcil.benchmarking.result import BenchmarkResult, PartTiming, environment
from calcil.benchmarking.timing import CompiledCall, compile_call, time_calls
from calcil.operators.base import LinearOperator, Operator

__all__ = ["benchmark", "timed_parts"]


def benchmark(
    fn_or_operator,
    *args,
    adjoint: bool = True,
    gram: bool = False,
    grad: bool = False,
    baseline: Callable | None = None,
    repeats: int | None = None,
    min_time: float = 0.2,
    blocks: int = 4,
    bandwidth_bytes: int | None = None,
) -> BenchmarkResult:
    """Time an operator or a function on the current device and report how close it runs
    to the device's memory bandwidth.

    For an :class:`~calcil.operators.Operator` ``A`` and an input ``x`` (one argument of
    ``A.input_shape``), the parts are ``forward`` (``A(x)``), ``adjoint`` (``A.H(y)``, linear
    operators, ``y`` of the output's shape), ``gram`` (``A.gram(x)``) and ``grad``
    (``jax.value_and_grad`` of ``0.5 ||A x - y||^2``). For a function, the part is ``fn``
    (``fn(*args)``, which must return arrays) and, with ``grad``, ``grad``
    (``jax.value_and_grad`` of ``fn`` in its first argument; ``fn`` must return a real
    scalar). ``baseline``, a function of the same arguments (for example the hand-written
    JAX equivalent), is timed beside the first part and gives each part's ``ratio``.

    Every part is compiled once (``compile_seconds``), run once to warm up, then timed with
    ``jax.block_until_ready``; the parts (and the baseline) alternate in ``blocks`` blocks.
    ``repeats`` calls of each in all, or by default enough for ``min_time`` seconds each.
    Per part: the median and minimum time (s), the compiled program's memory, the bytes one
    call moves (XLA's cost analysis, else its buffers: a lower bound), the achieved
    bandwidth and its fraction of the device's copy bandwidth (measured once per process on
    a ``bandwidth_bytes`` array, see :func:`~calcil.benchmarking.device_bandwidth`).

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> A = cc.operators.Convolve(jnp.ones((3, 3)) / 9, (64, 64))
        >>> result = cc.benchmark(A, jnp.ones((64, 64)), gram=True, repeats=8,
        ...                       bandwidth_bytes=2**22)
        >>> list(result.parts)
        ['forward', 'adjoint', 'gram']
        >>> result["forward"].median > 0
        True
    """
    calls, label = timed_parts(fn_or_operator, args, adjoint=adjoint, gram=gram, grad=grad)
    named = {c.name: c for c in calls}
    if baseline is not None:
        if not callable(baseline):
            raise TypeError(f"baseline must be a function of the same arguments, got {baseline!r}")
        base = compile_call(baseline, tuple(args), "baseline")
        if "baseline" in named:
            raise ValueError("a part is already named 'baseline'")
        named["baseline"] = base
    calls_by_name = {name: c.call for name, c in named.items()}
    timings = time_calls(calls_by_name, repeats=repeats, min_time=min_time, blocks=blocks)
    reference = device_bandwidth(bandwidth_bytes).bytes_per_second
    base_median = timings.median("baseline") if baseline is not None else None

    def part(c: CompiledCall, ratio: bool) -> PartTiming:
        median = timings.median(c.name)
        moved, source = c.bytes_moved
        return PartTiming(
            name=c.name,
            median=median,
            min=timings.min(c.name),
            calls=len(timings.seconds[c.name]),
            compile_seconds=c.compile_seconds,
            peak_bytes=c.memory["peak_bytes"],
            bytes_moved=moved,
            bytes_source=source,
            bandwidth=moved / median,
            bandwidth_fraction=moved / median / reference,
            ratio=median / base_median if ratio and base_median else None,
        )

    parts = {c.name: part(c, True) for c in calls}
    base_part = None if baseline is None else part(named["baseline"], False)
    return BenchmarkResult(label, parts, environment(), reference, base_part)


def timed_parts(fn_or_operator, args, adjoint=True, gram=False, grad=False):
    """``([CompiledCall], label)``: the compiled parts :func:`benchmark` times."""
    if isinstance(fn_or_operator, Operator):
        return _operator_parts(fn_or_operator, args, adjoint, gram, grad)
    if not callable(fn_or_operator):
        raise TypeError(
            f"cc.benchmark times a calcil Operator or a function, got {fn_or_operator!r}"
        )
    if gram:
        raise ValueError(
            "gram=True needs a calcil LinearOperator (it times A.gram); for a function, time "
            "the composition you mean as a function of its own"
        )
    fn = fn_or_operator
    calls = [compile_call(fn, tuple(args), "fn")]
    if grad:
        if not args:
            raise ValueError("grad=True differentiates fn in its first argument; give one")
        out = jax.eval_shape(fn, *args)
        if not (
            isinstance(out, jax.ShapeDtypeStruct)
            and out.shape == ()
            and jnp.issubdtype(out.dtype, jnp.floating)
        ):
            raise ValueError(
                f"grad=True needs fn to return a real scalar (a loss or an objective); it "
                f"returns {out}. Reduce it to a scalar, or time it without grad."
            )
        calls.append(compile_call(jax.value_and_grad(fn), tuple(args), "grad"))
    return calls, getattr(fn, "__name__", type(fn).__name__)


def _operator_parts(A: Operator, args, adjoint, gram, grad):
    if len(args) != 1:
        raise ValueError(
            f"cc.benchmark(operator, x) takes one input x of shape {A.input_shape}; got "
            f"{len(args)} arguments"
        )
    (x,) = args
    x = jnp.asarray(x)
    if tuple(x.shape) != tuple(A.input_shape):
        raise ValueError(
            f"{A!r} takes inputs of shape {tuple(A.input_shape)}, but x has shape "
            f"{tuple(x.shape)}. Give an x of the operator's input_shape."
        )
    linear = isinstance(A, LinearOperator)
    if gram and not linear:
        raise ValueError(f"gram=True needs a linear operator; {A!r} is not linear")
    # Operators are pytrees: passed as arguments, their arrays are not baked into the program.
    calls = [compile_call(lambda op, v: op(v), (A, x), "forward")]
    y = calls[0].call()  # the adjoint's input and the gradient's data
    if adjoint and linear:
        calls.append(compile_call(lambda op, v: op.H(v), (A, y), "adjoint"))
    if gram:
        calls.append(compile_call(lambda op, v: op.gram(v), (A, x), "gram"))
    if grad:

        def loss(op, v, target):
            r = op(v) - target
            return 0.5 * jnp.sum(jnp.real(jnp.conj(r) * r))

        calls.append(compile_call(jax.value_and_grad(loss, argnums=1), (A, x, y), "grad"))
    shape = "x".join(str(n) for n in A.input_shape)
    return calls, f"{type(A).__name__} {shape} {jnp.dtype(x.dtype).name}"
