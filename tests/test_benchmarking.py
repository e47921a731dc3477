"""cc.benchmark, the shared timing core and ``python -m calcil bench``.

Known costs: a copy kernel of N bytes moves 2N bytes (XLA's count) and runs near the device's
copy bandwidth; a function that repeats that copy 16 times in sequence is timed about 16x
slower than one copy, and the ratio says so. The parts compute what they name (checked
against NumPy), the JSON has a fixed schema, and bad arguments get clear errors.
"""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import calcil as cc
from calcil.benchmarking import standard
from calcil.benchmarking.measure import timed_parts
from calcil.benchmarking.timing import compile_call, time_calls

MIB = 2**20
SMALL_BANDWIDTH = 4 * MIB  # a quick reference copy where bandwidth is not the point


def copy_kernel(x):
    return x + 1


def test_time_calls_alternates_blocks_and_counts_calls():
    order = []
    calls = {name: (lambda n=name: order.append(n)) for name in "abc"}
    timings = time_calls(calls, repeats=6, blocks=3)
    assert {k: len(v) for k, v in timings.seconds.items()} == {"a": 6, "b": 6, "c": 6}
    blocks = [order[i : i + 6] for i in range(0, 18, 6)]
    # each block runs every function twice, the order rotated by one per block
    assert [b[::2] for b in blocks] == [list("abc"), list("bca"), list("cab")]
    assert timings.median("a") >= timings.min("a") >= 0
    with pytest.raises(ValueError, match="at least one function"):
        time_calls({})


def test_copy_kernel_moves_its_bytes_near_the_device_bandwidth():
    """One copy of 8 MiB: XLA counts 2 x 8 MiB, and the achieved bandwidth is of the order of
    the device's own copy bandwidth (the default reference: in place, beyond the caches).
    (8 MiB: on a CPU a fresh output buffer of 32 MiB or more pays page faults on every call.)
    """
    nbytes = 8 * MIB
    x = jnp.zeros((nbytes // 4,), jnp.float32)
    result = cc.benchmark(copy_kernel, x, min_time=0.3)
    part = result["fn"]
    assert part.bytes_source == "xla cost analysis"
    assert part.bytes_moved == pytest.approx(2 * nbytes, rel=0.01)
    assert part.peak_bytes == pytest.approx(2 * nbytes, rel=0.01)
    assert part.bandwidth == pytest.approx(part.bytes_moved / part.median)
    assert 0.25 < part.bandwidth_fraction < 4, result.table()
    reference = cc.benchmarking.device_bandwidth()
    assert result.device_bandwidth == reference.bytes_per_second
    assert reference.nbytes >= 256 * MIB


def test_a_slow_function_shows_in_the_ratio():
    """A function that applies ``sin`` 100 times in sequence against one that applies it
    once: the ratio is far above 1 (about 100, less the fixed cost of a call)."""
    x = jnp.linspace(0, 1, 2**18, dtype=jnp.float32)

    def once(v):
        return jnp.sin(v)

    def hundred_times(v):
        return jax.lax.fori_loop(0, 100, lambda i, a: jnp.sin(a), v)

    result = cc.benchmark(
        hundred_times, x, baseline=once, min_time=0.2, bandwidth_bytes=SMALL_BANDWIDTH
    )
    assert result["fn"].ratio > 10, result.table()
    assert result.baseline.ratio is None
    fast = cc.benchmark(once, x, baseline=hundred_times, bandwidth_bytes=SMALL_BANDWIDTH)
    assert fast["fn"].ratio < 0.1, fast.table()
    # a program with a loop reports its buffers (a lower bound), not XLA's once-counted body
    assert result["fn"].bytes_source.startswith("program buffers")
    assert fast["fn"].bytes_source == "xla cost analysis"


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.complex64])
def test_operator_parts_compute_what_they_name(dtype):
    rng = np.random.default_rng(0)
    kernel = rng.random((5, 5)).astype(np.float32)
    A = cc.operators.Convolve(kernel, (16, 16), input_dtype=dtype)
    x = jnp.asarray(rng.standard_normal((16, 16)), dtype)
    calls, label = timed_parts(A, (x,), adjoint=True, gram=True, grad=True)
    assert [c.name for c in calls] == ["forward", "adjoint", "gram", "grad"]
    assert label.startswith("Convolve 16x16")
    out = {c.name: c.call() for c in calls}
    Ax = np.asarray(A(x))
    np.testing.assert_allclose(out["forward"], Ax, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["adjoint"], np.asarray(A.H(A(x))), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(out["gram"], np.asarray(A.H(A(x))), rtol=1e-5, atol=1e-4)
    value, grad = out["grad"]  # at the data A x: zero loss and gradient
    assert float(value) == pytest.approx(0.0, abs=1e-6)
    assert float(jnp.max(jnp.abs(grad))) < 1e-4


def test_result_table_and_json_schema(tmp_path):
    A = cc.operators.FFT((32, 32), input_dtype=jnp.complex64)
    x = jnp.ones((32, 32), jnp.complex64)
    result = cc.benchmark(A, x, gram=True, repeats=4, bandwidth_bytes=SMALL_BANDWIDTH)
    assert list(result.parts) == ["forward", "adjoint", "gram"]
    path = tmp_path / "fft.json"
    data = json.loads(result.to_json(path))
    assert json.loads(path.read_text()) == data
    assert set(data) == {"label", "environment", "device_bandwidth", "parts", "baseline"}
    assert {"device", "backend", "jax", "jaxlib", "calcil", "python"} <= set(data["environment"])
    part = data["parts"]["forward"]
    assert set(part) == {
        "name",
        "median",
        "min",
        "calls",
        "compile_seconds",
        "peak_bytes",
        "bytes_moved",
        "bytes_source",
        "bandwidth",
        "bandwidth_fraction",
        "ratio",
    }
    assert part["calls"] == 4 and part["median"] >= part["min"] > 0
    assert part["compile_seconds"] > 0 and part["bytes_moved"] > 0
    assert part["peak_bytes"] >= 2 * 32 * 32 * 8  # input and output, complex64
    text = str(result)
    assert text.startswith("FFT 32x32 complex64 on ")
    assert "| forward |" in text and "| gram |" in text and "ratio" in text


def test_function_with_gradient():
    def objective(x, y):
        return 0.5 * jnp.sum((x - y) ** 2)

    x, y = jnp.ones(64), jnp.zeros(64)
    result = cc.benchmark(objective, x, y, grad=True, repeats=2, bandwidth_bytes=SMALL_BANDWIDTH)
    assert list(result.parts) == ["fn", "grad"]
    assert result.label == "objective"
    fn, grad = timed_parts(objective, (x, y), grad=True)[0]
    assert float(fn.call()) == pytest.approx(32.0)  # 0.5 * 64 ones
    value, gradient = grad.call()  # value_and_grad in the first argument: x - y
    assert float(value) == pytest.approx(32.0)
    np.testing.assert_allclose(gradient, np.ones(64))


def test_clear_errors():
    A = cc.operators.Convolve(jnp.ones((3, 3)), (16, 16))
    with pytest.raises(ValueError, match=r"takes inputs of shape \(16, 16\), but x has shape"):
        cc.benchmark(A, jnp.ones((8, 8)))
    with pytest.raises(ValueError, match="takes one input x"):
        cc.benchmark(A, jnp.ones((16, 16)), jnp.ones((16, 16)))
    with pytest.raises(TypeError, match=r"must return JAX arrays.*returned NoneType"):
        cc.benchmark(lambda x: None, jnp.ones(4))
    with pytest.raises(TypeError, match="must return JAX arrays"):
        compile_call(lambda x: "text", (jnp.ones(4),))
    with pytest.raises(ValueError, match="gram=True needs a calcil LinearOperator"):
        cc.benchmark(copy_kernel, jnp.ones(4), gram=True)
    with pytest.raises(ValueError, match="needs fn to return a real scalar"):
        cc.benchmark(copy_kernel, jnp.ones(4), grad=True)
    with pytest.raises(TypeError, match="a calcil Operator or a function, got 42"):
        cc.benchmark(42)
    with pytest.raises(TypeError, match="baseline must be a function"):
        cc.benchmark(copy_kernel, jnp.ones(4), baseline="fast")


def test_nonlinear_operator_has_no_adjoint_part():
    op = cc.operators.from_function(jnp.sin, (8,))
    assert not op.linear
    x = jnp.ones(8)
    result = cc.benchmark(op, x, grad=True, repeats=2, bandwidth_bytes=SMALL_BANDWIDTH)
    assert list(result.parts) == ["forward", "grad"]
    with pytest.raises(ValueError, match="gram=True needs a linear operator"):
        cc.benchmark(op, x, gram=True)


def test_standard_set_runs_and_agrees_at_a_tiny_size():
    result = standard.run_standard(32, quick=True, min_time=0.01, blocks=2, steps=5)
    rows = {r["case"]: r for r in result["rows"]}
    assert list(rows) == list(standard.CASES)
    for r in rows.values():
        assert r["calcil_seconds"] > 0 and r["hand_seconds"] > 0
        assert r["ratio"] == pytest.approx(r["calcil_seconds"] / r["hand_seconds"])
        assert r["agreement"] <= 2e-2
    assert rows["tv-deconvolution"]["steps"] == 5 and rows["tv-deconvolution"]["bandwidth"] is None
    assert rows["convolve-2d"]["bandwidth_fraction"] > 0
    table = standard.standard_table(result)
    assert table.splitlines()[0].startswith(f"calcil {cc.__version__} on ")
    assert table.count("\n| ") == len(standard.CASES) + 1  # the head and one row per case


def test_standard_set_refuses_to_time_disagreeing_sides(monkeypatch):
    def broken(n):
        case = standard.convolve_2d(n)
        ours, theirs = case.outputs
        return standard.Case(case.name, case.what, case.calcil, case.hand, (ours, 2 * theirs), 1e-4)

    monkeypatch.setitem(standard.CASES, "convolve-2d", broken)
    with pytest.raises(AssertionError, match="convolve-2d: calcil and the hand-written code"):
        standard.run_standard(32, quick=True, cases=["convolve-2d"], min_time=0.01)
    with pytest.raises(ValueError, match="unknown benchmark cases"):
        standard.run_standard(32, cases=["nope"])


def test_command_line(tmp_path):
    path = tmp_path / "bench.json"
    command = [sys.executable, "-m", "calcil", "bench", "--size", "32", "--quick"]
    done = subprocess.run(
        [*command, "--json", str(path), "--cases", "convolve-2d", "fft-2d"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("calcil ") and "jax" in lines[0]
    assert sum(line.startswith("| Convolve") or line.startswith("| FFT") for line in lines) == 2
    data = json.loads(path.read_text())
    assert set(data) == {"header", "rows"}
    assert {"device", "backend", "jax", "date", "size", "device_bandwidth"} <= set(data["header"])
    assert [r["case"] for r in data["rows"]] == ["convolve-2d", "fft-2d"]
    bad = subprocess.run(
        [sys.executable, "-m", "calcil", "bench", "--size", "8"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "--size must be at least 16" in bad.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "calcil", "bench", "--cases", "nope"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "unknown cases ['nope']" in bad.stderr
    missing = tmp_path / "no-such-folder" / "bench.json"
    bad = subprocess.run(
        [*command, "--json", str(missing)], capture_output=True, text=True, timeout=300
    )
    assert bad.returncode == 2 and "cannot write --json" in bad.stderr
    assert not missing.parent.exists()
