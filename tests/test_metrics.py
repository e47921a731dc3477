"""Metrics against scikit-image: PSNR, SSIM (2D camera image, 3D volume) and NRMSE on noisy and
blurred data, several data ranges, float32 and float64, inside jax.jit and jax.vmap."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

import calcil.metrics as metrics

skm = pytest.importorskip("skimage.metrics")
skdata = pytest.importorskip("skimage.data")

sk_ssim = functools.partial(
    skm.structural_similarity, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
)


@functools.cache
def camera_pair():
    """The camera image in [0, 1] (cropped to 256 x 320 for speed), blurred plus noise."""
    ref = skdata.camera()[64:320, 96:416].astype(np.float64) / 255
    rng = np.random.default_rng(0)
    x = ndimage.gaussian_filter(ref, 1.2) + 0.05 * rng.standard_normal(ref.shape)
    return x, ref


@functools.cache
def volume_pair():
    rng = np.random.default_rng(1)
    ref = ndimage.gaussian_filter(rng.random((18, 24, 30)), 1.5)
    x = ref + 0.02 * rng.standard_normal(ref.shape)
    return x, ref


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


# -------------------------------------------------------------------------------- SSIM
@pytest.mark.parametrize("data_range", [1.0, 0.5, 2.0, 255.0])
def test_ssim_2d_matches_skimage_float64(x64, data_range):
    x, ref = camera_pair()
    got = metrics.ssim(jnp.asarray(x), jnp.asarray(ref), data_range)
    assert got.dtype == jnp.float64
    want = sk_ssim(x, ref, data_range=data_range)
    assert abs(float(got) - want) < 1e-12
    assert 0.05 < want < 1  # a non-trivial comparison


def test_ssim_default_data_range_is_the_range_of_ref(x64):
    x, ref = camera_pair()
    want = sk_ssim(x, ref, data_range=ref.max() - ref.min())
    assert abs(float(metrics.ssim(x, ref)) - want) < 1e-12
    # argument order matters: the range is ref's, and SSIM is symmetric for equal ranges
    assert (
        abs(float(metrics.ssim(ref, x, data_range=1.0)) - sk_ssim(x, ref, data_range=1.0)) < 1e-12
    )


@pytest.mark.parametrize("data_range", [None, 0.3])
def test_ssim_3d_volume_matches_skimage(x64, data_range):
    x, ref = volume_pair()
    r = np.ptp(ref) if data_range is None else data_range
    want = sk_ssim(x, ref, data_range=r)
    assert abs(float(metrics.ssim(x, ref, data_range)) - want) < 1e-12


def test_ssim_float32_and_jit():
    x, ref = camera_pair()
    x32, ref32 = jnp.asarray(x, jnp.float32), jnp.asarray(ref, jnp.float32)
    got = jax.jit(metrics.ssim)(x32, ref32, 1.0)
    assert got.dtype == jnp.float32 and got.shape == ()
    assert abs(float(got) - sk_ssim(x, ref, data_range=1.0)) < 2e-6
    # a traced data_range, and the default one, compile too
    assert (
        abs(
            float(jax.jit(metrics.ssim)(x32, ref32, jnp.float32(2.0)))
            - sk_ssim(x, ref, data_range=2.0)
        )
        < 2e-6
    )
    default = jax.jit(lambda a, b: metrics.ssim(a, b))(x32, ref32)
    assert abs(float(default) - sk_ssim(x, ref, data_range=np.ptp(ref))) < 2e-6


def test_ssim_identity_vmap_and_integers():
    ref = jnp.asarray(camera_pair()[1][:64, :64], jnp.float32)
    assert float(metrics.ssim(ref, ref)) == pytest.approx(1.0, abs=1e-6)
    batch = jnp.stack([ref, ref + 0.1, 1 - ref])
    per_image = jax.vmap(lambda a: metrics.ssim(a, ref, 1.0))(batch)
    assert per_image.shape == (3,)
    want = [
        sk_ssim(np.asarray(b, np.float64), np.asarray(ref, np.float64), data_range=1.0)
        for b in batch
    ]
    np.testing.assert_allclose(np.asarray(per_image), want, atol=2e-6)
    img = skdata.camera()[64:128, 96:160]
    noisy = np.clip(img.astype(int) + np.arange(64) % 7 - 3, 0, 255).astype(np.uint8)
    np.testing.assert_allclose(
        float(metrics.ssim(noisy, img, 255)), sk_ssim(noisy, img, data_range=255), atol=2e-6
    )


def test_ssim_errors():
    a = jnp.ones((16, 16))
    with pytest.raises(ValueError, match=r"same shape, got x \(16, 16\) and ref \(16, 17\)"):
        metrics.ssim(a, jnp.ones((16, 17)))
    with pytest.raises(ValueError, match=r"real images, got complex64.*jnp.abs"):
        metrics.ssim(a + 0j, a + 0j)
    with pytest.raises(
        ValueError, match=r"at least 11 pixels along every axis.*\(4, 16, 16\).*vmap"
    ):
        metrics.ssim(jnp.ones((4, 16, 16)), jnp.ones((4, 16, 16)))
    with pytest.raises(ValueError, match=r"data_range > 0.*got -1"):
        metrics.ssim(a, a, data_range=-1)
    with pytest.raises(ValueError, match=r"data_range as a real scalar"):
        metrics.ssim(a, a, data_range=[1.0, 2.0])


# -------------------------------------------------------------------------------- PSNR
@pytest.mark.parametrize("data_range", [1.0, 0.25, 4.0])
def test_psnr_matches_skimage(x64, data_range):
    x, ref = camera_pair()
    want = skm.peak_signal_noise_ratio(ref, x, data_range=data_range)
    got = metrics.psnr(x, ref, data_range)
    assert got.dtype == jnp.float64 and abs(float(got) - want) < 1e-10
    x32, ref32 = jnp.asarray(x, jnp.float32), jnp.asarray(ref, jnp.float32)
    got32 = jax.jit(metrics.psnr)(x32, ref32, data_range)
    assert got32.dtype == jnp.float32 and abs(float(got32) - want) < 1e-4


def test_psnr_default_range_complex_and_vmap():
    x, ref = camera_pair()
    # default: the range of ref, not scikit-image's dtype range
    want = skm.peak_signal_noise_ratio(ref, x, data_range=np.ptp(ref))
    assert float(jax.jit(metrics.psnr)(jnp.asarray(x), jnp.asarray(ref))) == pytest.approx(
        want, abs=1e-4
    )
    # complex: mean |x - ref|^2 and the range of |ref|
    z = ref * np.exp(1j * ref)
    zx = z + 0.01 * (1 + 1j)
    want = 10 * np.log10(np.ptp(np.abs(z)) ** 2 / 2e-4)
    assert float(
        metrics.psnr(jnp.asarray(zx, jnp.complex64), jnp.asarray(z, jnp.complex64))
    ) == pytest.approx(want, abs=1e-3)
    # a negative reference: the range is max - min, not of |ref|
    r = jnp.linspace(-1.0, 1.0, 101)
    assert float(metrics.psnr(r + 0.01, r)) == pytest.approx(10 * np.log10(4 / 1e-4), abs=1e-3)
    assert float(metrics.psnr(r, r)) == np.inf
    batch = jnp.stack([r + 0.01, r + 0.1])
    np.testing.assert_allclose(
        jax.vmap(lambda a: metrics.psnr(a, r, 2.0))(batch), [46.0206, 26.0206], atol=1e-3
    )


def test_psnr_errors():
    with pytest.raises(
        ValueError, match=r"psnr expects x and ref of the same shape, got x \(3,\) and ref \(4,\)"
    ):
        metrics.psnr(jnp.ones(3), jnp.ones(4))
    with pytest.raises(ValueError, match=r"psnr expects data_range > 0.*got 0"):
        metrics.psnr(jnp.ones(3), jnp.ones(3), data_range=0)
    with pytest.raises(ValueError, match=r"data_range as a real scalar"):
        metrics.psnr(jnp.ones(3), jnp.ones(3), data_range="big")


# ------------------------------------------------------------------------------- NRMSE
def test_nrmse_matches_skimage_euclidean(x64):
    x, ref = camera_pair()
    want = skm.normalized_root_mse(ref, x, normalization="euclidean")
    got = metrics.nrmse(x, ref)
    assert got.dtype == jnp.float64 and abs(float(got) - want) < 1e-12
    got32 = jax.jit(metrics.nrmse)(jnp.asarray(x, jnp.float32), jnp.asarray(ref, jnp.float32))
    assert got32.dtype == jnp.float32 and abs(float(got32) - want) < 1e-6
    vx, vref = volume_pair()
    want = skm.normalized_root_mse(vref, vx, normalization="euclidean")
    assert abs(float(metrics.nrmse(vx, vref)) - want) < 1e-12


def test_nrmse_complex_and_errors():
    rng = np.random.default_rng(2)
    ref = rng.standard_normal(50) + 1j * rng.standard_normal(50)
    x = ref + 0.1 * (rng.standard_normal(50) + 1j * rng.standard_normal(50))
    want = np.linalg.norm(x - ref) / np.linalg.norm(ref)
    got = metrics.nrmse(jnp.asarray(x, jnp.complex64), jnp.asarray(ref, jnp.complex64))
    assert got.dtype == jnp.float32 and float(got) == pytest.approx(want, rel=1e-5)
    assert float(metrics.nrmse(jnp.zeros(50), jnp.asarray(ref, jnp.complex64))) == pytest.approx(
        1.0
    )
    with pytest.raises(
        ValueError, match=r"nrmse expects x and ref of the same shape.*\(2, 3\).*\(3, 2\)"
    ):
        metrics.nrmse(jnp.ones((2, 3)), jnp.ones((3, 2)))


def test_metrics_in_a_jitted_callback_have_no_host_transfer():
    """All three trace to one program (no concrete values needed) and run under vmap."""
    ref = jnp.asarray(camera_pair()[1][:64, :64], jnp.float32)
    x = ref + 0.01

    @jax.jit
    def report(x, ref):
        return metrics.psnr(x, ref), metrics.ssim(x, ref), metrics.nrmse(x, ref)

    with jax.transfer_guard("disallow"):
        p, s, n = report(x, ref)
    assert float(p) > 30 and 0.9 < float(s) <= 1 and float(n) < 0.1
