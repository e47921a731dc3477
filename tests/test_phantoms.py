"""Phantoms: Shepp-Logan against scikit-image's image, beads counted and measured with
scipy.ndimage, Siemens star sign changes around circles."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

import calcil.phantoms as phantoms

KEY = jax.random.key(0)


def arr(x):
    return np.asarray(x, np.float64)


# --------------------------------------------------------------------------- Shepp-Logan
def test_shepp_logan_2d_matches_skimage():
    skdata = pytest.importorskip("skimage.data")
    ref = skdata.shepp_logan_phantom()  # 400 x 400, modified Shepp-Logan, values in [0, 1]
    p = phantoms.shepp_logan((400, 400))
    assert p.shape == (400, 400) and p.dtype == jnp.float32
    diff = np.abs(arr(p) - ref)
    assert diff.mean() < 1e-3
    assert np.mean(diff > 0.05) < 1e-4  # same sampling grid: equal up to the PNG's 8 bits


def test_shepp_logan_2d_orientation_and_values():
    p = arr(phantoms.shepp_logan((401, 401)))
    rows, cols = np.nonzero(p)
    assert np.ptp(rows) > np.ptp(cols)  # taller than wide
    # the three small ellipses at y = -0.605 are near the bottom (row 0 is y = +1)
    row = round((1 + 0.605) / 2 * 400)
    assert p[row, 200] == pytest.approx(0.3) and p[400 - row, 200] == pytest.approx(0.2)
    # the larger ventricle (x = -0.22) is in the left half
    dark = ndimage.binary_fill_holes(p > 0) & (p == 0)  # the two ventricles
    assert dark[:, :200].sum() > 1.5 * dark[:, 201:].sum()  # area ratio 0.16 * 0.41 / 0.11 * 0.31
    assert np.allclose(np.unique(np.round(p, 6)), [0, 0.1, 0.2, 0.3, 0.4, 1])
    assert p[200, 200] == pytest.approx(0.2)


def test_shepp_logan_non_square_spans_each_axis():
    p = arr(phantoms.shepp_logan((101, 51)))
    rows, cols = np.nonzero(p)
    # semi-axes 0.92 (y) and 0.69 (x) of the half-size along each axis
    assert np.ptp(rows) == pytest.approx(0.92 * 100, abs=2)
    assert np.ptp(cols) == pytest.approx(0.69 * 50, abs=2)


def test_shepp_logan_supersample_stays_in_range():
    p1 = arr(phantoms.shepp_logan((64, 64)))
    p3 = arr(phantoms.shepp_logan((64, 64), supersample=3))
    assert p3.min() >= 0 and p3.max() <= 1
    assert len(np.unique(p3)) > len(np.unique(p1))  # partial-volume edge values
    assert abs(p3.mean() - p1.mean()) < 0.01


@pytest.mark.parametrize("nz", [64, 65])
def test_shepp_logan_3d_central_slice(nz):
    v = arr(phantoms.shepp_logan((nz, 64, 64)))
    assert v.shape == (nz, 64, 64)
    assert v.min() == 0 and v.max() == 1
    p2 = arr(phantoms.shepp_logan((64, 64)))
    assert np.corrcoef(v[nz // 2].ravel(), p2.ravel())[0, 1] > 0.9
    # a genuinely 3D object: the skull closes near the top and bottom of the z range
    assert v[0].max() == 0 and v[nz // 2, 32, 32] == pytest.approx(0.2)


def test_shepp_logan_float64():
    with jax.enable_x64(True):
        p = phantoms.shepp_logan((32, 32), dtype=jnp.float64)
        assert p.dtype == jnp.float64
    np.testing.assert_allclose(arr(p), arr(phantoms.shepp_logan((32, 32))), atol=1e-7)


@pytest.mark.parametrize(
    "shape", [64, (64,), (4, 4, 4, 4), (0, 16), (16, -1), (16.0, 16), (True, 16), "ab"]
)
def test_shepp_logan_bad_shape(shape):
    with pytest.raises(ValueError, match=r"shape as a 2-tuple \(ny, nx\) or a 3-tuple.*got"):
        phantoms.shepp_logan(shape)


def test_shepp_logan_bad_arguments():
    with pytest.raises(ValueError, match="supersample as a positive int, got 0"):
        phantoms.shepp_logan((8, 8), supersample=0)
    with pytest.raises(ValueError, match=r"floating or complex dtype.*got int32"):
        phantoms.shepp_logan((8, 8), dtype=jnp.int32)


# --------------------------------------------------------------------------------- beads
def test_beads_deterministic_from_key():
    a = arr(phantoms.beads((64, 64), 10, 3.0, KEY))
    b = arr(phantoms.beads((64, 64), 10, 3.0, jax.random.key(0)))
    c = arr(phantoms.beads((64, 64), 10, 3.0, jax.random.key(1)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # legacy uint32 keys work too
    d = arr(phantoms.beads((64, 64), 10, 3.0, jax.random.PRNGKey(0)))
    assert ndimage.label(d > 0)[1] == 10


@pytest.mark.parametrize("smooth", [False, True])
@pytest.mark.parametrize("shape", [(48, 64, 64), (160, 192)])
def test_beads_count_volume_inside(shape, smooth):
    n, r, value = 12, 6.0, 0.02
    x = arr(phantoms.beads(shape, n, r, KEY, value=value, smooth=smooth))
    assert x.shape == shape
    assert x.min() >= 0 and x.max() <= value * (1 + 1e-6)
    labels, count = ndimage.label(x > 0)
    assert count == n
    ideal = 4 / 3 * math.pi * r**3 if len(shape) == 3 else math.pi * r**2
    # binary: pixel count (lattice noise); smooth: summed partial volumes
    size = ndimage.sum(x > 0 if not smooth else x / value, labels, range(1, n + 1))
    np.testing.assert_allclose(size / ideal, 1, atol=0.05 if not smooth else 0.03)
    # every bead is whole: its centre of mass is at least r from the array's edges
    for com in ndimage.center_of_mass(x, labels, range(1, n + 1)):
        assert all(r - 0.5 <= c <= s - 1 - r + 0.5 for c, s in zip(com, shape, strict=True))
    if not smooth:
        assert set(np.unique(x)) == {0.0, np.float32(value)}


def test_beads_radius_range_and_background():
    x = arr(phantoms.beads((128, 128), 20, (2.5, 7.0), KEY, value=0.1, background=0.5))
    assert x.min() == pytest.approx(0.1) and x.max() == pytest.approx(0.5)
    labels, count = ndimage.label(x < 0.5)
    assert count == 20
    areas = ndimage.sum(x < 0.5, labels, range(1, 21))
    assert areas.min() >= 0.9 * math.pi * 2.5**2 and areas.max() <= 1.1 * math.pi * 7.0**2
    assert np.ptp(areas) > 20  # radii are drawn, not all equal
    s = arr(phantoms.beads((64, 64), 5, 4.0, KEY, value=1.0, background=2.0, smooth=True))
    assert s.min() >= 1.0 and s.max() <= 2.0 and len(np.unique(s)) > 2


def test_beads_overlaps_take_the_max():
    x = arr(phantoms.beads((32, 32), 40, 5.0, KEY, value=0.3, min_gap=None))
    assert set(np.unique(x)) == {0.0, np.float32(0.3)}  # no 0.6 where beads overlap
    assert ndimage.label(x > 0)[1] < 40
    y = arr(phantoms.beads((32, 32), 40, 5.0, KEY, value=0.3, min_gap=None, smooth=True))
    assert y.max() <= np.float32(0.3)


def test_beads_float64_and_empty():
    with jax.enable_x64(True):
        x = phantoms.beads((16, 16, 16), 2, 2.0, KEY, value=0.02, dtype=jnp.float64)
        assert x.dtype == jnp.float64 and float(x.max()) == 0.02
    assert float(jnp.abs(phantoms.beads((16, 16), 0, 2.0, KEY, background=1.0) - 1).max()) == 0


def test_beads_errors():
    with pytest.raises(ValueError, match=r"shape as a 2-tuple \(ny, nx\).*got \(64,\)"):
        phantoms.beads((64,), 1, 2.0, KEY)
    for n in (-1, 2.5, True, "3"):
        with pytest.raises(ValueError, match=r"n \(number of beads\) as an int >= 0, got"):
            phantoms.beads((64, 64), n, 2.0, KEY)
    for radius in (0, -1.0, (5, 3), (1, 2, 3), "a", float("nan")):
        with pytest.raises(ValueError, match=r"radius as a positive number.*got"):
            phantoms.beads((64, 64), 1, radius, KEY)
    with pytest.raises(ValueError, match=r"at least 2 \* radius \+ 1 = 21 pixels, got 16"):
        phantoms.beads((16, 64), 1, 10.0, KEY)
    with pytest.raises(ValueError, match=r"could place only \d+ of the requested n=40"):
        phantoms.beads((32, 32), 40, 5.0, KEY)
    with pytest.raises(ValueError, match=r"min_gap >= 0 .* got -1"):
        phantoms.beads((32, 32), 1, 2.0, KEY, min_gap=-1)
    with pytest.raises(ValueError, match=r"min_gap >= 0 .* got 'a'"):
        phantoms.beads((32, 32), 1, 2.0, KEY, min_gap="a")
    for key in (0, np.zeros(2, np.uint32), jax.random.split(KEY, 2)):
        with pytest.raises(ValueError, match=r"key as one jax.random key .*got"):
            phantoms.beads((32, 32), 1, 2.0, key)
    with pytest.raises(ValueError, match="max_tries as an int >= n = 5, got 2"):
        phantoms.beads((32, 32), 5, 2.0, KEY, max_tries=2)


# -------------------------------------------------------------------------- Siemens star
def sign_changes(star, radius):
    """Sign changes of ``star - 1/2`` around a circle about the array centre (bilinear)."""
    ny, nx = star.shape
    theta = np.linspace(0, 2 * np.pi, 8192, endpoint=False)
    rows, cols = (ny - 1) / 2 - radius * np.sin(theta), (nx - 1) / 2 + radius * np.cos(theta)
    high = ndimage.map_coordinates(star, [rows, cols], order=1) > 0.5
    return int(np.sum(high != np.roll(high, 1)))


@pytest.mark.parametrize("profile", ["binary", "sine"])
@pytest.mark.parametrize("spokes", [1, 7, 36])
def test_siemens_star_sign_changes(spokes, profile):
    s = arr(phantoms.siemens_star((256, 256), spokes, profile=profile))
    assert s.min() >= 0 and s.max() <= 1
    for radius in (60, 100):
        assert sign_changes(s, radius) == 2 * spokes


def test_siemens_star_symmetry_and_disk():
    s = arr(phantoms.siemens_star((128, 128), 36))
    assert set(np.unique(s)) == {0.0, 1.0}
    np.testing.assert_array_equal(s, s[::-1])  # mirror about the x axis
    np.testing.assert_array_equal(s, s[::-1, ::-1])  # 180 degrees, even number of spokes
    yy, xx = np.mgrid[:128, :128] - 63.5
    assert s[np.hypot(yy, xx) > 0.95 * 64].max() == 0
    full = arr(phantoms.siemens_star((128, 128), 36, radius=None))
    assert full[np.hypot(yy, xx) > 0.95 * 64].mean() == pytest.approx(0.5, abs=0.05)
    odd = arr(phantoms.siemens_star((128, 128), 7, radius=None))
    np.testing.assert_array_equal(odd[::-1, ::-1], 1 - odd)  # odd spokes: 180 deg inverts


def test_siemens_star_sine_and_dtype():
    s = arr(phantoms.siemens_star((65, 65), 4, profile="sine"))
    assert s[32, 60] == pytest.approx(1.0) and s[32, 32] == pytest.approx(1.0)
    assert s[7, 32] == pytest.approx(1.0)  # +y: cos(4 * 90 deg) = 1
    with jax.enable_x64(True):
        assert phantoms.siemens_star((8, 8), dtype=jnp.float64).dtype == jnp.float64


def test_siemens_star_errors():
    with pytest.raises(ValueError, match=r"shape as a 2-tuple \(ny, nx\) of positive ints"):
        phantoms.siemens_star((8, 8, 8))
    with pytest.raises(ValueError, match="spokes as an int >= 1, got 0"):
        phantoms.siemens_star((8, 8), 0)
    for radius in (-1, 0, "a", float("inf")):
        with pytest.raises(ValueError, match=r"radius > 0 .* got"):
            phantoms.siemens_star((8, 8), radius=radius)
    with pytest.raises(ValueError, match="profile 'binary' or 'sine', got 'square'"):
        phantoms.siemens_star((8, 8), profile="square")
