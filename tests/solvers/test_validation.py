"""Bad input is refused before anything is compiled: data a loss cannot model, integer
parameters, and data without a measurement axis for mini-batches."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import calcil as cc

SOLVERS = {
    "gradient": lambda obj: cc.GradientSolver(obj, optimizer=optax.sgd(0.1)),
    "proximal": lambda obj: cc.ProximalGradient(obj),
}


def counting_objective(loss):
    """An identity forward model that records every call (tracing included)."""
    calls = []

    def forward(p, b):
        calls.append(1)
        return p["x"]

    return cc.Objective(forward, loss), calls


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize(
    ("loss", "y", "pattern"),
    [
        (cc.losses.Poisson("y"), [3.0, -1.0, 0.0], r"Poisson: data\['y'\] must be >= 0"),
        (cc.losses.Poisson("y"), [3.0, np.nan, 0.0], r"Poisson: data\['y'\] must hold finite"),
        (cc.losses.Amplitude("y"), [1.0, 4.0, -0.5], r"Amplitude: data\['y'\] must be >= 0"),
        (cc.losses.L2("y"), [1.0, np.inf, 0.0], r"L2: data\['y'\] must hold finite values"),
        (
            cc.losses.WeightedL2("y", jnp.ones(2)),
            [1.0, 2.0, 3.0],
            r"weights of shape \(2,\) do not broadcast to the shape \(3,\)",
        ),
    ],
)
def test_data_a_loss_cannot_model_is_refused_before_compiling(solver, loss, y, pattern):
    obj, calls = counting_objective(loss)
    s = SOLVERS[solver](obj)
    data = {"y": jnp.asarray(y, jnp.float32)}
    with pytest.raises(ValueError, match=pattern):
        s.run({"x": jnp.ones(3)}, data, iterations=2, progress=False)
    assert calls == [] and s.traces == 0  # the forward model was never evaluated or traced


def test_valid_poisson_counts_still_run():
    obj, calls = counting_objective(cc.losses.Poisson("y"))
    y = jnp.array([3.0, 1.0, 5.0])  # the minimiser of sum(x - y log x) is x = y
    result = cc.ProximalGradient(obj).run({"x": jnp.ones(3)}, {"y": y}, 200, progress=False)
    np.testing.assert_allclose(result.params["x"], [3.0, 1.0, 5.0], rtol=1e-3)
    assert calls


@pytest.mark.parametrize(
    "solver",
    [
        lambda obj: cc.GradientSolver(obj, optimizer=optax.sgd(0.1)),
        cc.ProximalGradient,
        cc.ConjugateGradient,
    ],
    ids=["GradientSolver", "ProximalGradient", "ConjugateGradient"],
)
def test_integer_parameters_name_path_and_dtype(solver):
    obj = cc.Objective(lambda p, b: p["img"]["x"] + p["b"], cc.losses.L2("y"))
    init = {"img": {"x": jnp.zeros(4, jnp.int32)}, "b": jnp.zeros(4)}
    pattern = r"these parameters are not: img/x \(int32\)\. Cast them to float32 in init"
    with pytest.raises(ValueError, match=pattern):
        solver(obj).run(init, {"y": jnp.ones(4)}, iterations=2, progress=False)


def test_boolean_and_python_integer_parameters_are_listed_together():
    obj = cc.Objective(lambda p, b: p["x"] + p["s"] + p["m"], cc.losses.L2("y"))
    solver = cc.GradientSolver(obj, optimizer=optax.sgd(0.1))
    init = {"x": jnp.zeros(2), "s": 1, "m": jnp.array([True, False])}
    with pytest.raises(ValueError, match=r"not: m \(bool\), s \(int32\)\. Cast them to float32"):
        solver.run(init, {"y": jnp.ones(2)}, iterations=1, progress=False)


def mean_solver():
    """x -> the mean of the measurements in each batch."""
    obj = cc.Objective(lambda p, b: jnp.broadcast_to(p["x"], b["y"].shape), cc.losses.L2("y"))
    return cc.GradientSolver(obj, optimizer=optax.sgd(0.1))


@pytest.mark.parametrize(
    ("data", "batch_size", "pattern"),
    [
        (
            {"y": jnp.zeros((4, 3)), "scale": jnp.float32(2.0)},
            2,
            r"batch_size=2 draws mini-batches along the leading \(measurement\) axis of every "
            r"data leaf, but scale has no axis \(shapes: scale \(\), y \(4, 3\)\)\. Give every",
        ),
        (
            jnp.zeros(()),
            1,
            r"but data has no axis \(shapes: data \(\)\)",
        ),
        (
            {"y": jnp.zeros((4, 3)), "w": jnp.zeros((5,))},
            2,
            r"needs the same leading \(measurement\) axis, but their lengths differ \(shapes: "
            r"w \(5,\), y \(4, 3\)\)",
        ),
        (
            {"y": jnp.zeros((4, 3))},
            5,
            r"batch_size 5 is larger than the 4 measurements in data \(the leading axis; "
            r"shapes: y \(4, 3\)\)\. Use batch_size <= 4",
        ),
        ({"y": jnp.zeros((4, 3))}, 2.0, r"batch_size must be a positive integer .* got 2\.0"),
        ({"y": jnp.zeros((4, 3))}, 0, r"batch_size must be a positive integer .* got 0"),
        (None, 2, r"data has none \(got None\)"),
    ],
)
def test_batch_size_needs_a_common_measurement_axis(data, batch_size, pattern):
    with pytest.raises(ValueError, match=pattern):
        mean_solver().run(
            {"x": jnp.zeros(3)}, data, iterations=2, batch_size=batch_size, progress=False
        )


def test_numpy_integer_batch_size_runs_like_an_int():
    y = jnp.asarray(np.random.default_rng(0).standard_normal((6, 3)), jnp.float32)
    runs = [
        mean_solver().run({"x": jnp.zeros(3)}, {"y": y}, 30, batch_size=b, progress=False)
        for b in (3, np.int64(3))
    ]
    np.testing.assert_array_equal(runs[0].params["x"], runs[1].params["x"])
    np.testing.assert_array_equal(runs[0].history["loss/total"], runs[1].history["loss/total"])


def test_conjugate_gradient_refuses_non_finite_data_before_compiling():
    obj, calls = counting_objective(cc.losses.L2("y"))
    solver = cc.ConjugateGradient(obj)
    with pytest.raises(ValueError, match=r"L2: data\['y'\] must hold finite values"):
        solver.run({"x": jnp.ones(3)}, {"y": jnp.array([1.0, np.nan, 0.0])}, iterations=2)
    assert calls == [] and solver.traces == 0
