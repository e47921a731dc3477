"""IncoherentImaging against a NumPy intensity-PSF convolution, its OTF's value at zero and
cutoff, and the gradient with respect to the Zernike coefficients."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import calcil as cc
from tests.helpers import fd_grad

O = cc.operators


def _numpy_psf(n, dx, wavelength, na, defocus):
    """The pupil disk with a Noll Z4 defocus phase, its coherent PSF and the normalised
    intensity PSF (origin at [0, 0]), all in NumPy."""
    fy, fx = np.meshgrid(np.fft.fftfreq(n, dx), np.fft.fftfreq(n, dx), indexing="ij")
    rho = np.hypot(fy, fx) / (na / wavelength)
    pupil = (rho <= 1) * np.exp(1j * defocus * np.sqrt(3) * (2 * rho**2 - 1))
    intensity = np.abs(np.fft.ifft2(pupil)) ** 2
    return intensity / intensity.sum()


def test_equals_the_numpy_intensity_psf_convolution():
    n, dx, wavelength, na, defocus = 48, 0.1, 0.52, 0.7, 0.8
    rng = np.random.default_rng(0)
    o = rng.uniform(size=(2, n, n))
    psf = _numpy_psf(n, dx, wavelength, na, defocus)
    want = np.real(np.fft.ifft2(np.fft.fft2(o) * np.fft.fft2(psf)))
    with jax.enable_x64(True):
        A = O.IncoherentImaging((2, n, n), dx, wavelength, na, zernike=[0, 0, 0, defocus])
        np.testing.assert_allclose(A(jnp.asarray(o)), want, atol=1e-12)


def test_otf_is_one_at_zero_and_cut_off_at_twice_the_coherent_cutoff():
    n, dx, wavelength, na = 64, 0.1, 0.5, 0.6
    with jax.enable_x64(True):
        A = O.IncoherentImaging((n, n), dx, wavelength, na, zernike=[0, 0.3, 0, 0.5, 0.2])
        otf = np.asarray(A.otf)
        np.testing.assert_allclose(otf[0, 0], 1.0, atol=1e-12)
        f = np.hypot(*np.meshgrid(np.fft.fftfreq(n, dx), np.fft.fftfreq(n, dx), indexing="ij"))
        cutoff = 2 * na / wavelength
        assert np.abs(otf[f > cutoff * 1.001]).max() < 1e-12
        assert np.abs(otf[f < cutoff * 0.5]).min() > 0.05
        np.testing.assert_allclose(A(jnp.full((n, n), 3.0)), 3.0, atol=1e-12)


def test_gradient_with_respect_to_the_zernike_coefficients():
    rng = np.random.default_rng(1)
    o = rng.uniform(size=(24, 24))
    w = rng.standard_normal((24, 24))
    with jax.enable_x64(True):

        def loss(c):
            return jnp.sum(w * O.IncoherentImaging((24, 24), 0.1, 0.5, 0.5, zernike=c)(o))

        c = np.array([0.0, 0.2, -0.1, 0.4, 0.3])
        np.testing.assert_allclose(jax.grad(loss)(c), fd_grad(loss, c), rtol=1e-5, atol=1e-7)


def test_an_undersampled_grid_warns():
    with pytest.warns(UserWarning, match=r"dx <= wavelength / \(4 na\)"):
        O.IncoherentImaging((32, 32), dx=0.2, wavelength=0.5, na=0.8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        O.IncoherentImaging((32, 32), dx=0.15, wavelength=0.5, na=0.8)
