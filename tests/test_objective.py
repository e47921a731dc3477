"""Objective: totals and named terms against NumPy, path errors, jit/grad/vmap, complex forward
models with intensity losses, and flax parameter trees."""

import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import calcil as cc
from calcil.losses import L2, Amplitude, Poisson
from calcil.priors import L1, TV, NonNegative
from tests.helpers import fd_grad, randn


def np_tv(x):
    dy = np.diff(x, axis=0, append=x[-1:])
    dx = np.diff(x, axis=1, append=x[:, -1:])
    return np.sum(np.sqrt(np.abs(dy) ** 2 + np.abs(dx) ** 2))


def assert_trees_close(got, want, rtol=1e-6, atol=1e-8):
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


def setup(seed=0):
    """A blurred-and-offset image model with nested parameters and two kinds of priors."""
    rng = np.random.default_rng(seed)
    d = rng.uniform(0.5, 2.0, (4, 5))
    params = {"img": {"x": rng.standard_normal((4, 5))}, "offset": rng.standard_normal(5)}
    batch = {"y": rng.standard_normal((4, 5))}

    def forward(p, b):
        return d * p["img"]["x"] + p["offset"]

    priors = {"img/x": 0.1 * TV(), "offset": L1() + 2.0 * L1()}
    return forward, priors, params, batch, d


def test_total_is_the_sum_of_named_terms_and_matches_numpy():
    forward, priors, params, batch, d = setup()
    obj = cc.Objective(forward, L2("y"), priors)
    with jax.enable_x64(True):
        value, terms = jax.jit(obj)(params, batch)
    x, o, y = params["img"]["x"], params["offset"], batch["y"]
    want = {
        "loss/l2": 0.5 * np.sum((d * x + o - y) ** 2),
        "prior/img/x/tv": 0.1 * np_tv(x),
        "prior/offset/l1": np.sum(np.abs(o)),
        "prior/offset/l1_2": 2.0 * np.sum(np.abs(o)),
    }
    assert set(terms) == set(want)
    for k, v in want.items():
        assert float(terms[k]) == pytest.approx(v, rel=1e-12), k
    assert float(value) == pytest.approx(sum(want.values()), rel=1e-12)
    assert float(value) == pytest.approx(sum(float(t) for t in terms.values()), rel=1e-12)
    with jax.enable_x64(True):
        assert float(jax.jit(obj.value)(params, batch)) == float(value)


def test_duplicate_loss_names_and_prior_names_are_distinct():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(6)
    batch = {"y": rng.standard_normal(6), "z": rng.standard_normal(6)}
    obj = cc.Objective(
        lambda p, b: p["x"],
        L2("y") + 0.5 * L2("z"),
        priors={"x": L1() + 3.0 * L1(), "x2": L1()},
    )
    with jax.enable_x64(True):
        value, terms = jax.jit(obj)({"x": x, "x2": -x}, batch)
    l1 = np.abs(x).sum()
    want = {
        "loss/l2": 0.5 * np.sum((x - batch["y"]) ** 2),
        "loss/l2_2": 0.25 * np.sum((x - batch["z"]) ** 2),
        "prior/x/l1": l1,
        "prior/x/l1_2": 3 * l1,
        "prior/x2/l1": l1,
    }
    assert set(terms) == set(want)
    np.testing.assert_allclose([float(terms[k]) for k in want], list(want.values()), rtol=1e-12)
    assert float(value) == pytest.approx(sum(want.values()), rel=1e-12)


def test_prior_on_a_subtree_covers_every_leaf():
    rng = np.random.default_rng(2)
    params = {"net": {"w": rng.standard_normal((2, 3)), "b": rng.standard_normal(3)}, "s": 1.0}
    obj = cc.Objective(lambda p, b: p["s"] * jnp.ones(2), L2("y"), priors={"net": 0.5 * L1()})
    with jax.enable_x64(True):
        _, terms = jax.jit(obj)(params, {"y": np.zeros(2)})
    want = 0.5 * (np.abs(params["net"]["w"]).sum() + np.abs(params["net"]["b"]).sum())
    assert set(terms) == {"loss/l2", "prior/net/l1"}
    assert float(terms["prior/net/l1"]) == pytest.approx(want, rel=1e-12)


def test_constraint_prior_is_zero_or_inf():
    obj = cc.Objective(lambda p, b: p["x"], L2("y"), priors={"x": NonNegative()})
    batch = {"y": jnp.zeros(2)}
    value, terms = obj({"x": jnp.array([1.0, 2.0])}, batch)
    assert float(terms["prior/x/nonnegative"]) == 0.0 and float(value) == pytest.approx(2.5)
    value, terms = obj({"x": jnp.array([-1.0, 2.0])}, batch)
    assert float(terms["prior/x/nonnegative"]) == np.inf and float(value) == np.inf


# ---------------------------------------------------------------------------- errors


def test_missing_prior_path_lists_the_paths():
    forward, _, params, batch, _ = setup()
    for path in ("x", "img/y", "img/xx", "img/x/0"):
        obj = cc.Objective(forward, L2("y"), priors={path: L1()})
        pattern = rf"no parameter at path '{path}'; the parameters have paths \['img/x', 'offset'\]"
        with pytest.raises(KeyError, match=pattern):
            obj(params, batch)
    # under jit too
    obj = cc.Objective(forward, L2("y"), priors={"nope": L1()})
    with pytest.raises(KeyError, match=r"\['img/x', 'offset'\]"):
        jax.jit(obj)(params, batch)


def test_missing_batch_key_lists_the_keys():
    forward, priors, params, _, _ = setup()
    obj = cc.Objective(forward, L2("y"), priors)
    with pytest.raises(KeyError, match=r"batch\['y'\], but the batch has \['meas', 'mask'\]"):
        obj(params, {"meas": np.zeros((4, 5)), "mask": np.ones((4, 5))})


def test_shape_mismatch_between_forward_and_measurement():
    forward, priors, params, _, _ = setup()
    obj = cc.Objective(forward, L2("y"), priors)
    with pytest.raises(ValueError, match=r"prediction of shape \(4, 5\) does not match"):
        obj(params, {"y": np.zeros((5, 4))})


def test_bad_arguments():
    with pytest.raises(TypeError, match=r"forward must be a function \(params, batch\)"):
        cc.Objective(3.0, L2("y"))
    with pytest.raises(TypeError, match=r"loss must be a calcil.losses term"):
        cc.Objective(lambda p, b: p, lambda pred, b: 0.0)
    with pytest.raises(TypeError, match=r"priors must map parameter paths \(str\)"):
        cc.Objective(lambda p, b: p, L2(), priors={"x": 0.1})
    with pytest.raises(TypeError, match=r"priors must map parameter paths \(str\)"):
        cc.Objective(lambda p, b: p, L2(), priors={0: L1()})


# ---------------------------------------------------------------------------- jit, grad, vmap


def test_jit_and_grad_match_numpy():
    forward, priors, params, batch, d = setup(3)
    obj = cc.Objective(forward, L2("y"), priors)
    with jax.enable_x64(True):
        value, terms = obj(params, batch)
        jvalue, jterms = jax.jit(obj)(params, batch)
        assert float(jvalue) == pytest.approx(float(value), rel=1e-12)
        assert set(jterms) == set(terms)
        g = jax.jit(jax.grad(obj.value))(params, batch)
        assert_trees_close(g, fd_grad(jax.jit(lambda p: obj.value(p, batch)), params))
    # the data term's gradient by hand: d (d x + o - y) for x, the row sum for o
    x, o, y = params["img"]["x"], params["offset"], batch["y"]
    r = d * x + o - y
    tv_free = cc.Objective(forward, L2("y"), priors={"offset": L1()})
    with jax.enable_x64(True):
        g = jax.grad(tv_free.value)(params, batch)
    np.testing.assert_allclose(g["img"]["x"], d * r, rtol=1e-12)
    np.testing.assert_allclose(g["offset"], r.sum(axis=0) + np.sign(o), rtol=1e-12)


def test_vmap_over_batches():
    forward, priors, params, _, _ = setup(4)
    obj = cc.Objective(forward, L2("y"), priors)
    ys = np.random.default_rng(5).standard_normal((3, 4, 5))
    with jax.enable_x64(True):
        got = jax.vmap(obj.value, (None, 0))(params, {"y": ys})
        value = jax.jit(obj.value)
        want = [float(value(params, {"y": y})) for y in ys]
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("loss_cls", [Poisson, Amplitude])
def test_complex_forward_with_an_intensity_loss(loss_cls):
    """forward returns a field u = FFT(a exp(i phi)); Poisson and Amplitude use |u|^2."""
    rng = np.random.default_rng(6)
    params = {"a": rng.uniform(0.5, 1.5, (4, 4)), "phi": rng.uniform(-1, 1, (4, 4))}
    y = rng.poisson(5.0, (4, 4)).astype(float)

    def forward(p, b):
        return jnp.fft.fft2(p["a"] * jnp.exp(1j * p["phi"])) / 4

    obj = cc.Objective(forward, loss_cls("y"), priors={"phi": 0.05 * TV(eps=1e-3)})
    u = np.fft.fft2(params["a"] * np.exp(1j * params["phi"])) / 4
    intensity = np.abs(u) ** 2
    if loss_cls is Poisson:
        data = np.sum(intensity - y * np.log(intensity))
    else:
        data = 0.5 * np.sum((np.sqrt(intensity) - np.sqrt(y)) ** 2)
    dy = np.diff(params["phi"], axis=0, append=params["phi"][-1:])
    dx = np.diff(params["phi"], axis=1, append=params["phi"][:, -1:])
    prior = 0.05 * np.sum(np.sqrt(dy**2 + dx**2 + 1e-6))
    name = loss_cls("y").name
    with jax.enable_x64(True):
        value, terms = jax.jit(obj)(params, {"y": y})
        assert set(terms) == {f"loss/{name}", "prior/phi/tv"}
        assert float(terms[f"loss/{name}"]) == pytest.approx(data, rel=1e-12)
        assert float(terms["prior/phi/tv"]) == pytest.approx(prior, rel=1e-12)
        assert float(value) == pytest.approx(data + prior, rel=1e-12)
        g = jax.jit(jax.grad(obj.value))(params, {"y": y})
        assert_trees_close(g, fd_grad(jax.jit(lambda p: obj.value(p, {"y": y})), params))


def test_complex_parameters_descend_along_the_conjugate_gradient():
    """A complex field as the parameter: conj(jax.grad) is the steepest-ascent direction."""
    rng = np.random.default_rng(7)
    u, v = randn(rng, 5, np.complex128), randn(rng, 5, np.complex128)
    obj = cc.Objective(lambda p, b: p["u"], L2("v"), priors={"u": 0.5 * cc.priors.L2()})
    with jax.enable_x64(True):
        value, _ = jax.jit(obj)({"u": u}, {"v": v})
        assert float(value) == pytest.approx(
            0.5 * np.sum(np.abs(u - v) ** 2) + 0.25 * np.sum(np.abs(u) ** 2), rel=1e-12
        )
        g = np.conj(np.asarray(jax.grad(obj.value)({"u": u}, {"v": v})["u"]))
    np.testing.assert_allclose(g, (u - v) + 0.5 * u, rtol=1e-12)  # d/da + i d/db


def test_flax_parameter_tree():
    model = nn.Dense(3)
    rng = np.random.default_rng(8)
    inputs = rng.standard_normal((6, 2))
    with jax.enable_x64(True):
        variables = model.init(jax.random.key(0), jnp.asarray(inputs))
        # double precision (flax initialises in float32) and a nonzero bias
        variables = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64) + 0.1, variables)
        params = {"net": variables, "scale": jnp.asarray(1.5)}
        batch = {"inputs": inputs, "y": rng.standard_normal((6, 3))}

        def forward(p, b):
            return p["scale"] * model.apply(p["net"], b["inputs"])

        obj = cc.Objective(
            forward, L2("y"), priors={"net/params/kernel": 0.1 * cc.priors.L2(), "net": L1()}
        )
        value, terms = jax.jit(obj)(params, batch)
        g = jax.jit(jax.grad(obj.value))(params, batch)
    W = np.asarray(variables["params"]["kernel"])
    c = np.asarray(variables["params"]["bias"])
    s, X, y = 1.5, inputs, batch["y"]
    r = s * (X @ W + c) - y
    want = {
        "loss/l2": 0.5 * np.sum(r**2),
        "prior/net/params/kernel/l2": 0.05 * np.sum(W**2),
        "prior/net/l1": np.abs(W).sum() + np.abs(c).sum(),
    }
    assert set(terms) == set(want)
    for k, v in want.items():
        assert float(terms[k]) == pytest.approx(v, rel=1e-12), k
    assert float(value) == pytest.approx(sum(want.values()), rel=1e-12)
    np.testing.assert_allclose(
        g["net"]["params"]["kernel"], s * X.T @ r + 0.1 * W + np.sign(W), rtol=1e-10
    )
    np.testing.assert_allclose(g["net"]["params"]["bias"], s * r.sum(0) + np.sign(c), rtol=1e-10)
    assert float(g["scale"]) == pytest.approx(np.sum(r * (X @ W + c)), rel=1e-10)
    # a misspelt path lists the flax paths
    bad = cc.Objective(forward, L2("y"), priors={"net/params/weights": L1()})
    with (
        jax.enable_x64(True),
        pytest.raises(KeyError, match=r"\['net/params/bias', 'net/params/kernel', 'scale'\]"),
    ):
        bad(params, batch)


def test_total_keeps_single_precision_with_x64_on():
    """float32 parameters and data give a float32 total (no silent upcast to float64)."""
    _, priors, params, batch, d = setup(9)
    params, batch, d = jax.tree_util.tree_map(
        lambda a: jnp.asarray(a, jnp.float32), (params, batch, d)
    )
    obj = cc.Objective(lambda p, b: d * p["img"]["x"] + p["offset"], L2("y"), priors)
    with jax.enable_x64(True):
        value, terms = jax.jit(obj)(params, batch)
    assert {t.dtype for t in terms.values()} == {jnp.dtype(jnp.float32)}
    assert value.dtype == jnp.float32


def test_repr():
    def blur(p, b):
        return p["x"]

    obj = cc.Objective(blur, L2("y"), priors={"x": 0.5 * L1()})
    assert repr(obj) == "Objective(forward=blur, loss=L2(target='y'), priors={'x': 0.5 * L1()})"


def test_no_warnings_on_a_plain_call():
    forward, priors, params, batch, _ = setup(10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cc.Objective(forward, L2("y"), priors)(params, batch)


def test_check_data_delegates_to_the_loss():
    obj = cc.Objective(lambda p, b: p["x"], L2("y") + 0.1 * Poisson("counts"))
    good = {"y": np.array([-1.0, 2.0]), "counts": np.array([0.0, 5.0])}
    assert obj.check_data(good) is None
    with pytest.raises(ValueError, match=r"Poisson: data\['counts'\] must be >= 0 .* has 1 neg"):
        obj.check_data({**good, "counts": np.array([0.0, -5.0])})
    with pytest.raises(ValueError, match=r"L2: data\['y'\] must hold finite values, but has 1 NaN"):
        obj.check_data({**good, "y": np.array([np.nan, 2.0])})
