"""The least-squares fast path of the solvers: when it applies, and that it changes only the cost.

References: the same solver with ``fast_path=False`` (autodiff through the forward model) and
the objective evaluated directly, in float64 where the question is rounding.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import calcil as cc
from calcil.solvers import _fast_path
from tests.operators.test_gram import count_primitive

O = cc.operators


def _blur_problem(n=32, seed=0, dtype=jnp.float32):
    rng = np.random.default_rng(seed)
    r = np.arange(7) - 3
    psf = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / 4.0)
    A = O.Convolve(jnp.asarray(psf / psf.sum(), dtype), (n, n))
    x_true = jnp.asarray(rng.random((n, n)), dtype)
    y = A(x_true) + jnp.asarray(0.01 * rng.standard_normal((n, n)), dtype)
    return A, x_true, {"y": y}


def _tv_objective(A, loss=None):
    return cc.Objective(
        lambda p, b: A(p["x"]),
        cc.losses.L2("y") if loss is None else loss,
        priors={"x": 1e-3 * cc.priors.TV(eps=1e-3)},
    )


def test_gradient_solver_takes_the_fast_path_and_matches_autodiff():
    A, _, data = _blur_problem()
    obj = _tv_objective(A)
    init = {"x": jnp.zeros((32, 32))}
    fast = cc.GradientSolver(obj, optimizer=optax.adam(1e-2))
    slow = cc.GradientSolver(obj, optimizer=optax.adam(1e-2), fast_path=False)
    rf = fast.run(init, data, iterations=60, log_every=20, progress=False)
    rs = slow.run(init, data, iterations=60, log_every=20, progress=False)
    assert rf.fast_path.startswith("used: loss/l2 = 0.5 ||B x - U^H y||^2 on 'x'")
    assert rs.fast_path == "not used: fast_path=False"
    np.testing.assert_allclose(rf.params["x"], rs.params["x"], atol=2e-5)
    for key in ("loss/total", "loss/l2", "prior/x/tv"):
        np.testing.assert_allclose(rf.history[key], rs.history[key], rtol=2e-5)


def test_a_step_costs_one_fft_pair_instead_of_two():
    A, _, data = _blur_problem()
    obj = _tv_objective(A)
    init = {"x": jnp.zeros((32, 32))}
    fast, fast_data, _ = _fast_path.resolve(True, obj, init, data, None)
    assert fast is not None

    def ffts(fast, batch):
        def total(x):
            return _fast_path.evaluate(obj, fast, {"x": x}, batch)[0]

        return count_primitive(jax.make_jaxpr(jax.value_and_grad(total))(init["x"]), "fft")

    assert ffts(fast, fast_data) == 2
    assert ffts(None, data) == 4


def test_logged_loss_is_the_loss_without_cancellation():
    """Near the solution ``0.5<x, A^H A x> - <x, A^H y> + 0.5||y||^2`` loses ~1e-4 in float32;
    the residual form keeps the logged value to float32 rounding of the loss itself."""
    A, x_true, data = _blur_problem(n=128, seed=3)
    x = x_true + 1e-3 * jnp.asarray(np.random.default_rng(4).standard_normal((128, 128)))
    obj = cc.Objective(lambda p, b: A(p["x"]), cc.losses.L2("y"))
    result = cc.GradientSolver(obj, optimizer=optax.sgd(0.0)).run(
        {"x": x.astype(jnp.float32)}, data, iterations=1, progress=False
    )
    with jax.enable_x64(True):
        A64 = O.Convolve(_psf64(), (128, 128))
        r = A64(jnp.asarray(x, jnp.float64)) - jnp.asarray(data["y"], jnp.float64)
        reference = float(0.5 * jnp.sum(r * r))
    assert result.history["loss/l2"][0] == pytest.approx(reference, rel=3e-6)


def _psf64():
    r = np.arange(7) - 3
    psf = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / 4.0)
    return jnp.asarray(psf / psf.sum(), jnp.float32).astype(jnp.float64)


@pytest.mark.parametrize(
    ("loss", "factor"),
    [
        (cc.losses.L2("y", reduction="mean"), 1 / 32**2),
        (3.0 * cc.losses.L2("y"), 3.0),
        (0.5 * (2.0 * cc.losses.L2("y", name="data")), 1.0),
    ],
    ids=["mean", "weighted", "nested-weights"],
)
def test_weights_and_mean_reduction_are_kept(loss, factor):
    A, x_true, data = _blur_problem()
    obj = cc.Objective(lambda p, b: A(p["x"]), loss)
    params = {"x": x_true * 0.9}
    fast, fast_data, _ = _fast_path.resolve(True, obj, params, data, None)
    assert fast is not None
    value, terms = _fast_path.evaluate(obj, fast, params, fast_data)
    ref_value, ref_terms = obj(params, data)
    assert set(terms) == set(ref_terms)
    assert float(value) == pytest.approx(float(ref_value), rel=1e-5)
    direct = 0.5 * float(jnp.sum((A(params["x"]) - data["y"]) ** 2))
    assert float(value) == pytest.approx(factor * direct, rel=1e-5)


def test_complex_unknown_behind_a_unitary_fft():
    """0.5||F x - y||^2 with F unitary becomes 0.5||x - F^H y||^2: no FFT per step."""
    rng = np.random.default_rng(5)
    F = O.FFT((16, 16))
    u = jnp.asarray(
        rng.standard_normal((16, 16)) + 1j * rng.standard_normal((16, 16)), jnp.complex64
    )
    obj = cc.Objective(
        lambda p, b: F(p["u"]), cc.losses.L2("y"), priors={"u": 1e-2 * cc.priors.L1()}
    )
    init = {"u": jnp.zeros((16, 16), jnp.complex64)}
    data = {"y": F(u)}
    fast = cc.GradientSolver(obj, optimizer=optax.adam(5e-2))
    slow = cc.GradientSolver(obj, optimizer=optax.adam(5e-2), fast_path=False)
    rf = fast.run(init, data, iterations=40, progress=False)
    rs = slow.run(init, data, iterations=40, progress=False)
    assert "B = Identity" in rf.fast_path
    np.testing.assert_allclose(rf.params["u"], rs.params["u"], atol=1e-5)
    np.testing.assert_allclose(rf.history["loss/total"], rs.history["loss/total"], rtol=1e-5)


@pytest.mark.parametrize("solver", ["fista", "cg"])
def test_fista_and_cg_use_it_too(solver):
    A, _, data = _blur_problem()
    if solver == "fista":
        obj = cc.Objective(lambda p, b: A(p["x"]), cc.losses.L2("y"), {"x": 1e-3 * cc.priors.L1()})
        make = lambda fp: cc.ProximalGradient(obj, fast_path=fp)  # noqa: E731
    else:
        obj = cc.Objective(lambda p, b: A(p["x"]), cc.losses.L2("y"), {"x": 1e-2 * cc.priors.L2()})
        make = lambda fp: cc.ConjugateGradient(obj, fast_path=fp)  # noqa: E731
    init = {"x": jnp.zeros((32, 32))}
    fast, slow = make(True), make(False)
    rf = fast.run(init, data, iterations=30, progress=False)
    rs = slow.run(init, data, iterations=30, progress=False)
    assert rf.fast_path.startswith("used: loss/l2")
    np.testing.assert_allclose(rf.params["x"], rs.params["x"], atol=1e-4)
    np.testing.assert_allclose(rf.history["loss/total"], rs.history["loss/total"], rtol=1e-4)


def _blind(p, b):
    return O.Convolve(p["psf"], (32, 32))(p["x"])


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("batches", "mini-batches"),
        ("poisson", "is not a (scalar-weighted) L2"),
        ("weighted-l2", "is not a (scalar-weighted) L2"),
        ("offset", "the result is not the output of a calcil operator"),
        ("nonlinear", "Intensity() @ Convolve"),
        ("blind", "the operator is built from the variables"),
        ("numpy", "the operators are not applied to a variable itself"),
        ("crop", "declares no unitary factorization A = U B"),
    ],
)
def test_falls_back_to_autodiff_and_says_why(case, why):
    A, _, data = _blur_problem()
    L2, x = cc.losses.L2("y"), {"x": jnp.zeros((32, 32))}
    crop = O.Crop((32, 32), (16, 16))
    forward, loss, batch_size, init = lambda p, b: A(p["x"]), L2, None, x
    if case == "batches":
        data, batch_size = {"y": jnp.stack([data["y"]] * 2)}, 1
        forward = lambda p, b: A(p["x"])[None]  # noqa: E731
    elif case == "poisson":
        loss = cc.losses.Poisson("y")
    elif case == "weighted-l2":
        loss = cc.losses.WeightedL2("y", jnp.ones((32, 32)))
    elif case == "offset":
        forward = lambda p, b: A(p["x"]) + 1.0  # noqa: E731
    elif case == "nonlinear":
        forward = lambda p, b: (O.Intensity() @ A)(p["x"])  # noqa: E731
    elif case == "blind":
        forward, init = _blind, {"x": x["x"], "psf": jnp.ones((5, 5)) / 25}
    elif case == "numpy":
        forward = lambda p, b: A(jnp.asarray(p["x"]) * 2)  # noqa: E731
    elif case == "crop":
        forward = lambda p, b: (crop @ A)(p["x"])  # noqa: E731
        data = {"y": crop(data["y"])}
    obj = cc.Objective(forward, loss)
    solver = cc.GradientSolver(obj, optimizer=optax.sgd(1e-3))
    result = solver.run(init, data, iterations=3, batch_size=batch_size, progress=False)
    assert result.fast_path.startswith("not used: ")
    assert why in result.fast_path
    assert np.all(np.isfinite(result.history["loss/total"]))


def test_forward_may_build_its_operator_from_the_data():
    """An operator made from a batch entry (a measured PSF) is fixed for the run: fast."""
    _, _, data = _blur_problem()
    psf = jnp.ones((5, 5)) / 25
    obj = cc.Objective(lambda p, b: O.Convolve(b["psf"], (32, 32))(p["x"]), cc.losses.L2("y"))
    solver = cc.GradientSolver(obj, optimizer=optax.adam(1e-2))
    ref = cc.GradientSolver(obj, optimizer=optax.adam(1e-2), fast_path=False)
    d = {**data, "psf": psf}
    r1 = solver.run({"x": jnp.zeros((32, 32))}, d, iterations=10, progress=False)
    r2 = ref.run({"x": jnp.zeros((32, 32))}, d, iterations=10, progress=False)
    assert r1.fast_path.startswith("used: loss/l2")
    np.testing.assert_allclose(r1.params["x"], r2.params["x"], atol=1e-5)


def _propagators(n=32):
    phase = jnp.exp(1j * jnp.linspace(0, 3, n * n).reshape(n, n)).astype(jnp.complex64)
    pupil = O.Pupil((n, n), dx=0.5, wavelength=0.5, na=0.4, zernike=[0, 0, 0, 0.3, -0.2])
    return {
        "angular-spectrum": O.AngularSpectrum((n, n), dx=1.0, wavelength=0.5, distance=20.0),
        "fresnel": O.Fresnel((n, n), dx=1.0, wavelength=0.5, distance=30.0),
        "pupil": pupil,
        "phase-screen@angular-spectrum": O.Diagonal(phase)
        @ O.AngularSpectrum((n, n), dx=1.0, wavelength=0.5, distance=20.0),
        "z-stack": O.AngularSpectrum(
            (n, n), dx=1.0, wavelength=0.5, distance=jnp.array([5.0, 10.0, 20.0])
        ),
    }


@pytest.mark.parametrize("name", list(_propagators()))
def test_propagators_take_the_fast_path_with_one_fft_per_factor(name):
    """An L2 fit through F^H D F costs one FFT forward and one backward per step (not 4)."""
    A = _propagators()[name]
    rng = np.random.default_rng(7)
    u = jnp.asarray(rng.standard_normal((32, 32)) + 1j * rng.standard_normal((32, 32)))
    data = {"y": A(u.astype(jnp.complex64))}
    obj = cc.Objective(lambda p, b: A(p["u"]), cc.losses.L2("y"))
    init = {"u": jnp.zeros((32, 32), jnp.complex64)}
    fast, fast_data, outcome = _fast_path.resolve(True, obj, init, data, None)
    assert outcome.startswith("used: loss/l2"), outcome

    def ffts(fast, batch):
        def total(x):
            return _fast_path.evaluate(obj, fast, {"u": x}, batch)[0]

        return count_primitive(jax.make_jaxpr(jax.value_and_grad(total))(init["u"]), "fft")

    assert ffts(fast, fast_data) == 2
    assert ffts(None, data) == 4
    make = lambda fp: cc.GradientSolver(obj, optimizer=optax.adam(5e-2), fast_path=fp)  # noqa: E731
    rf = make(True).run(init, data, iterations=30, progress=False)
    rs = make(False).run(init, data, iterations=30, progress=False)
    np.testing.assert_allclose(rf.params["u"], rs.params["u"], atol=2e-5)
    np.testing.assert_allclose(rf.history["loss/total"], rs.history["loss/total"], rtol=2e-5)


def test_errors_in_the_forward_model_are_not_swallowed():
    """Reading the structure runs the user's forward model: its errors surface as they are."""
    A, _, data = _blur_problem()

    def forward(p, b):
        return A(p["x"]) * b["gain"]  # no "gain" in the data

    obj = cc.Objective(forward, cc.losses.L2("y"))
    for fast_path in (True, False):
        solver = cc.GradientSolver(obj, optimizer=optax.sgd(1e-3), fast_path=fast_path)
        with pytest.raises(KeyError, match="gain"):
            solver.run({"x": jnp.zeros((32, 32))}, data, iterations=2, progress=False)
