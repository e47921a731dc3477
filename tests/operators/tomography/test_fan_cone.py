"""FanBeamProjection and ConeBeamProjection against exact line integrals of Gaussian blobs,
against each other (the cone's central row is the fan beam of the central slice), and their
geometry gradients against finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import calcil as cc
from tests.helpers import fd_grad
from tests.operators.tomography import analytic

Fan = cc.operators.FanBeamProjection
Cone = cc.operators.ConeBeamProjection


@pytest.mark.parametrize(
    ("shape", "dx", "d_s", "d_d", "n_det", "spacing", "centre", "sigma"),
    [
        ((96, 96), 1.0, 120.0, 60.0, 200, 1.2, (10.0, -7.0), 5.0),
        ((128, 100), 0.5, 80.0, 40.0, 180, 0.7, (-5.0, 8.0), 2.5),  # dx != 1
    ],
)
def test_fan_blob_equals_the_analytic_line_integrals(
    shape, dx, d_s, d_d, n_det, spacing, centre, sigma
):
    angles = np.linspace(0, 2 * np.pi, 37)
    op = Fan(shape, angles, d_s, d_d, n_det, spacing, dx=dx)
    got = np.asarray(op(analytic.blob(shape, dx, centre, sigma).astype(np.float32)))
    want = analytic.fan_reference(angles, d_s, d_d, n_det, spacing, centre, sigma)
    assert np.abs(got - want).max() < 0.01 * want.max()


def test_fan_detector_inside_the_object_sees_half_of_each_ray():
    """Detector at the rotation axis: a blob centred there is integrated up to the detector,
    half of its line integral for the central ray."""
    shape, sigma = (64, 64), 5.0
    op = Fan(shape, np.array([0.0, 1.0]), 60.0, 0.0, 9, 1.0)
    got = np.asarray(op(analytic.blob(shape, 1.0, (0.0, 0.0), sigma).astype(np.float32)))
    np.testing.assert_allclose(got[:, 4], 0.5 * analytic.blob_integral(0.0, sigma), rtol=0.03)


def test_fan_fbp_recovers_a_disk_and_refuses_short_scans():
    n = 64
    x, y = analytic.grid((n, n), 1.0)
    disk = ((x - 4) ** 2 + (y + 3) ** 2 < 20**2).astype(np.float32) * 1.5
    angles = np.linspace(0, 2 * np.pi, 180, endpoint=False)
    op = Fan((n, n), angles, 100.0, 50.0, 160, 1.5)
    recon = np.asarray(op.fbp(op(disk)))
    inside = (x - 4) ** 2 + (y + 3) ** 2 < 17**2
    assert abs(recon[inside].mean() - 1.5) < 0.03
    assert np.abs(recon[inside] - 1.5).mean() < 0.05
    short = Fan((n, n), angles[:100], 100.0, 50.0, 160, 1.5)
    with pytest.raises(ValueError, match="full turn"):
        short.fbp(short(disk))


@pytest.mark.parametrize(
    ("shape", "dx", "d_s", "d_d", "detector", "spacing", "centre", "sigma"),
    [
        ((40, 48, 48), 0.5, 40.0, 20.0, (40, 60), (0.6, 0.7), (3.0, -2.0, 2.5), 2.5),
        ((44, 52, 52), 1.0, 60.0, 60.0, (40, 60), (1.5, 1.5), (-3.0, 2.0, -1.5), 5.5),
    ],
)
def test_cone_blob_equals_the_analytic_line_integrals(
    shape, dx, d_s, d_d, detector, spacing, centre, sigma
):
    angles = np.linspace(0, 2 * np.pi, 7)
    op = Cone(shape, angles, d_s, d_d, detector, spacing, dx=dx)
    got = np.asarray(op(analytic.blob(shape, dx, centre, sigma).astype(np.float32)))
    want = analytic.cone_reference(angles, d_s, d_d, detector, spacing, centre, sigma)
    assert got.shape == (7, *detector)
    assert np.abs(got - want).max() < 0.01 * want.max()


def test_cone_central_row_is_the_fan_beam_of_the_central_slice():
    rng = np.random.default_rng(0)
    volume = rng.standard_normal((5, 16, 18)).astype(np.float32)
    angles = rng.uniform(0, 2 * np.pi, 6)
    cone = Cone((5, 16, 18), angles, 30.0, 10.0, (7, 25), (1.3, 1.1))
    fan = Fan((16, 18), angles, 30.0, 10.0, 25, 1.1)
    np.testing.assert_allclose(cone(volume)[:, 3], fan(volume[2]), rtol=1e-5, atol=1e-5)


def test_geometry_gradients_match_finite_differences():
    with jax.enable_x64(True):
        image = analytic.blob((32, 32), 1.0, (3.0, -2.0), 3.0)
        volume = analytic.blob((12, 24, 24), 1.0, (2.0, -1.0, 1.5), 3.0)
        rng = np.random.default_rng(4)
        geometry = {"angles": np.array([0.3, 1.4, 2.5, 4.0]), "d_s": 50.0, "d_d": 20.0}
        w_fan = rng.standard_normal((4, 40))
        w_cone = rng.standard_normal((4, 14, 30))

        def fan_loss(g):
            op = Fan((32, 32), g["angles"], g["d_s"], g["d_d"], 40, 1.2)
            return jnp.sum(w_fan * op(image))

        def cone_loss(g):
            op = Cone((12, 24, 24), g["angles"], g["d_s"], g["d_d"], (14, 30), 1.3)
            return jnp.sum(w_cone * op(volume))

        for loss in (fan_loss, cone_loss):
            got, want = jax.grad(loss)(geometry), fd_grad(loss, geometry)
            for key in geometry:
                np.testing.assert_allclose(got[key], want[key], rtol=1e-5, err_msg=key)
