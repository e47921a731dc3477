"""FourierPtychography against the pupil-filtered, tilted exit wave computed on the fine grid
in NumPy and sampled every `downsample` pixels; uniform objects; LED rounding; overlap; the
Zernike and object gradients; bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import calcil as cc
from tests.helpers import fd_grad

O = cc.operators
N, DX, WL, NA, D = 48, 0.25, 0.5, 0.22, 4  # low-res grid 12 x 12, pixel 1.0
STEP = WL / (N * DX)  # the illumination NA of one spectrum pixel


def _object(seed=0, shape=(N, N)):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 1.0, shape) * np.exp(1j * rng.uniform(-1, 1, shape))


def _numpy_image(t, s, zernike=()):
    """|pupil-filtered exit wave under the tilt s = (sy, sx)|^2, sampled every D pixels."""
    ny, nx = t.shape
    y, x = np.meshgrid(np.arange(ny) * DX, np.arange(nx) * DX, indexing="ij")
    wave = t * np.exp(2j * np.pi * (s[0] * y + s[1] * x) / WL)
    fy, fx = np.meshgrid(np.fft.fftfreq(ny, DX), np.fft.fftfreq(nx, DX), indexing="ij")
    rho, theta = np.hypot(fy, fx) / (NA / WL), np.arctan2(fy, fx)
    phase = sum(c * np.asarray(O.zernike(j + 1, rho, theta)) for j, c in enumerate(zernike))
    pupil = (rho <= 1 + 1e-9) * np.exp(1j * phase)
    field = np.fft.ifft2(pupil * np.fft.fft2(wave))
    return np.abs(field[::D, ::D]) ** 2


def test_on_axis_and_tilted_leds_equal_the_sampled_filtered_exit_wave():
    t = _object()
    z = np.array([0.0, 0.3, -0.2, 0.5, 0.1])
    leds = np.array([[0, 0], [3 * STEP, -2 * STEP], [-5 * STEP, 0], [4 * STEP, 6 * STEP]])
    with jax.enable_x64(True):
        A = O.FourierPtychography((N, N), DX, WL, NA, leds, D, zernike=z)
        images = np.asarray(A(t))
        assert images.shape == (4, N // D, N // D) and images.dtype == np.float64
        for image, s in zip(images, leds, strict=True):
            np.testing.assert_allclose(image, _numpy_image(t, s, z), atol=1e-12)


def test_led_na_is_rounded_to_the_spectrum_grid():
    t = _object(1)
    leds = np.array([[1.3 * STEP, -2.6 * STEP]])
    with jax.enable_x64(True):
        A = O.FourierPtychography((N, N), DX, WL, NA, leds, D)
        np.testing.assert_allclose(A.effective_led_na, [[STEP, -3 * STEP]], atol=1e-15)
        np.testing.assert_allclose(A(t)[0], _numpy_image(t, [STEP, -3 * STEP]), atol=1e-12)


def test_a_uniform_object_is_one_in_brightfield_and_zero_in_darkfield():
    leds = O.led_array((5, 5), pitch=4.0, distance=40.0)  # sin up to 0.27 > NA = 0.22
    A = O.FourierPtychography((N, N), DX, WL, NA, leds, D)
    images = A(jnp.ones((N, N), jnp.complex64))
    bright = A.brightfield
    assert 0 < bright.sum() < len(leds)
    np.testing.assert_allclose(images[bright], 1.0, atol=1e-5)
    np.testing.assert_allclose(images[~bright], 0.0, atol=1e-6)
    np.testing.assert_array_equal(bright, np.hypot(*A.effective_led_na.T) <= NA)


def test_batch_axes_and_rectangular_grids():
    t = _object(2, (2, 40, 56))
    leds = np.array([[0.0, 0.0], [0.1, -0.05]])
    with jax.enable_x64(True):
        A = O.FourierPtychography((2, 40, 56), DX, WL, NA, leds, D)
        out = A(t)
        assert out.shape == (2, 2, 10, 14)
        one = O.FourierPtychography((40, 56), DX, WL, NA, leds, D)
        np.testing.assert_allclose(out[1], one(t[1]), atol=1e-12)


def test_a_traced_mini_batch_of_leds_gives_their_rows_of_the_full_stack():
    t = jnp.asarray(_object(4), jnp.complex64)
    leds = O.led_array((5, 5), pitch=4.0, distance=40.0)
    full = O.FourierPtychography((N, N), DX, WL, NA, leds, D)(t)
    pick = np.array([3, 12, 20])

    @jax.jit
    def images(led_na):
        return O.FourierPtychography((N, N), DX, WL, NA, led_na, D)(t)

    np.testing.assert_allclose(images(jnp.asarray(leds[pick])), full[pick], rtol=1e-5, atol=1e-6)
    A = O.FourierPtychography((N, N), DX, WL, NA, leds, D)
    assert jax.tree_util.tree_leaves(A)[-1] is A.led_na  # a leaf (without gradient: rounded)
    grad = jax.grad(lambda s: O.FourierPtychography((N, N), DX, WL, NA, s, D)(t).sum())(A.led_na)
    np.testing.assert_array_equal(grad, 0.0)


def test_led_array_geometry():
    s = O.led_array((2, 3), pitch=2.0, distance=10.0, center=(1.0, 0.0))
    y = np.array([-1, -1, -1, 1, 1, 1]) * 1.0 + 1.0
    x = np.array([-2, 0, 2, -2, 0, 2]) * 1.0
    r = np.sqrt(x**2 + y**2 + 100)
    np.testing.assert_allclose(s, np.stack([y / r, x / r], 1))


def test_overlap_of_neighbouring_leds():
    # two LEDs one pupil radius apart: overlap (2 / pi)(acos(1/2) - (1/2) sqrt(3/4)) = 39.1%
    radius_pixels = NA / WL * N * DX  # 5.28 spectrum pixels
    k = round(radius_pixels)
    leds = np.array([[0.0, 0.0], [0.0, k * STEP]])
    A = O.FourierPtychography((N, N), DX, WL, NA, leds, D)
    u = k / radius_pixels / 2
    want = (2 / np.pi) * (np.arccos(u) - u * np.sqrt(1 - u**2))
    np.testing.assert_allclose(A.overlap(), [want, want], rtol=1e-9)
    assert A.adequate_sampling(min_overlap=0.3)
    with pytest.warns(UserWarning, match="overlap their nearest neighbour"):
        assert not A.adequate_sampling(min_overlap=0.6)
    far = O.FourierPtychography((N, N), DX, WL, NA, [[0, 0], [0, 11 * STEP]], D)
    np.testing.assert_array_equal(far.overlap(), [0.0, 0.0])


def test_gradients_with_respect_to_the_pupil_and_the_object():
    t = _object(3, (16, 16))
    leds = np.array([[0.0, 0.0], [0.125, 0.0], [0.0, -0.25]])
    with jax.enable_x64(True):
        y = O.FourierPtychography((16, 16), DX, WL, 0.4, leds, 2)(t)

        @jax.jit
        def loss(z, obj):
            A = O.FourierPtychography((16, 16), DX, WL, 0.4, leds, 2, zernike=z)
            return 0.5 * jnp.sum((A(obj) - 1.1 * y) ** 2)

        z = np.array([0.1, -0.2, 0.3, 0.2, 0.0, -0.1])
        got = jax.jit(jax.grad(loss, argnums=(0, 1)))(z, t)
        np.testing.assert_allclose(got[0], fd_grad(lambda c: loss(c, t), z), rtol=1e-6, atol=1e-9)
        want = np.conj(fd_grad(lambda o: loss(z, o), t))
        np.testing.assert_allclose(got[1], want, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"downsample": 8}, "does not fit the low-resolution grid.*downsample <= 4"),
        ({"led_na": [[0.0, 0.85]]}, "beyond the object's spectrum.*dx <="),
        ({"led_na": [0.0, 0.1]}, r"shape \(n_leds, 2\)"),
        ({"led_na": [[0.0, np.nan]]}, "finite"),
        ({"na": -0.2}, "na must be a positive"),
        ({"wavelength": 0.0}, "wavelength must be a positive"),
        ({"downsample": 5}, "multiple of downsample = 5"),
        ({"downsample": 0}, "downsample must be a positive integer"),
    ],
)
def test_bad_input(kwargs, match):
    args = {"dx": DX, "wavelength": WL, "na": NA, "led_na": [[0.0, 0.0]], "downsample": D}
    with pytest.raises(ValueError, match=match):
        O.FourierPtychography((N, N), **{**args, **kwargs})


def test_concrete_leds_are_checked_also_inside_jit():
    t = jnp.ones((N, N), jnp.complex64)
    with pytest.raises(ValueError, match="beyond the object's spectrum"):
        jax.jit(lambda o: O.FourierPtychography((N, N), DX, WL, NA, [[0.0, 0.85]], D)(o))(t)
