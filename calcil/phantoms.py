"""Test objects: the Shepp-Logan head phantom (2D and 3D), random beads and a Siemens star.

These build NumPy grids once and return JAX arrays; they are ground truths for simulations,
not hot paths. Conventions:

* Arrays are indexed ``[y, x]`` in 2D and ``[z, y, x]`` in 3D; sizes and radii are in pixels.
* Every function takes ``dtype`` (default float32; float64 needs ``jax.enable_x64``) and
  returns values in a documented range.
* :func:`beads` is deterministic from a ``jax.random`` key: the same key gives the same array.
"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["beads", "shepp_logan", "siemens_star"]

# ------------------------------------------------------------------------- ellipse tables
# Modified Shepp-Logan phantom (Toft, "The Radon transform: theory and implementation", PhD
# thesis, DTU 1996, pp. 199-200; geometry of Shepp & Logan, IEEE TNS 21(3), 1974): additive
# value, semi-axes (a along x, b along y), centre (x0, y0), rotation (degrees, from +x to +y).
_SHEPP_LOGAN_2D = (
    # value    a       b       x0      y0      phi
    (1.0, 0.6900, 0.9200, 0.00, 0.0000, 0.0),
    (-0.8, 0.6624, 0.8740, 0.00, -0.0184, 0.0),
    (-0.2, 0.1100, 0.3100, 0.22, 0.0000, -18.0),
    (-0.2, 0.1600, 0.4100, -0.22, 0.0000, 18.0),
    (0.1, 0.2100, 0.2500, 0.00, 0.3500, 0.0),
    (0.1, 0.0460, 0.0460, 0.00, 0.1000, 0.0),
    (0.1, 0.0460, 0.0460, 0.00, -0.1000, 0.0),
    (0.1, 0.0460, 0.0230, -0.08, -0.6050, 0.0),
    (0.1, 0.0230, 0.0230, 0.00, -0.6060, 0.0),
    (0.1, 0.0230, 0.0460, 0.06, -0.6050, 0.0),
)

# 3D modified Shepp-Logan ellipsoids: M. Schabel, "3D Shepp-Logan phantom" (MATLAB File
# Exchange 9416, after Toft and Kak & Slaney, "Principles of Computerized Tomographic
# Imaging", 1988): semi-axes (a, b, c) and centres (x0, y0, z0). Rotations are the 2D angles
# about z, about each ellipsoid's own centre, so that the plane z = 0 reproduces the 2D
# phantom (Schabel's extra psi = 10 deg on ellipsoids 3-4 is dropped, as in ODL).
_SHEPP_LOGAN_3D = (
    # value    a       b      c      x0      y0      z0     phi
    (1.0, 0.6900, 0.920, 0.810, 0.00, 0.0000, 0.00, 0.0),
    (-0.8, 0.6624, 0.874, 0.780, 0.00, -0.0184, 0.00, 0.0),
    (-0.2, 0.1100, 0.310, 0.220, 0.22, 0.0000, 0.00, -18.0),
    (-0.2, 0.1600, 0.410, 0.280, -0.22, 0.0000, 0.00, 18.0),
    (0.1, 0.2100, 0.250, 0.410, 0.00, 0.3500, -0.15, 0.0),
    (0.1, 0.0460, 0.046, 0.050, 0.00, 0.1000, 0.25, 0.0),
    (0.1, 0.0460, 0.046, 0.050, 0.00, -0.1000, 0.25, 0.0),
    (0.1, 0.0460, 0.023, 0.050, -0.08, -0.6050, 0.00, 0.0),
    (0.1, 0.0230, 0.023, 0.020, 0.00, -0.6060, 0.00, 0.0),
    (0.1, 0.0230, 0.046, 0.020, 0.06, -0.6050, 0.00, 0.0),
)


# ------------------------------------------------------------------------------- checks
def _is_int(v) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _check_shape(shape, ndims, func, names):
    """``shape`` as a tuple of positive ints whose length is in ``ndims``."""
    expected = " or ".join(f"a {n}-tuple {names[n]}" for n in ndims)
    if (
        not isinstance(shape, tuple | list)
        or len(shape) not in ndims
        or not all(_is_int(s) and s >= 1 for s in shape)
    ):
        raise ValueError(f"{func} expects shape as {expected} of positive ints, got {shape!r}")
    return tuple(int(s) for s in shape)


def _check_key(key, func):
    typed = isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    legacy = isinstance(key, jax.Array) and key.dtype == jnp.uint32 and key.shape == (2,)
    if not (typed and key.shape == ()) and not legacy:
        raise ValueError(
            f"{func} expects key as one jax.random key (e.g. jax.random.key(0)), got {key!r}"
        )


def _nonnegative(value, func, name, expected):
    """``value`` as a float, or ``ValueError`` naming ``expected``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"{func} expects {name} {expected}, got {value!r}")
    return v


def _check_dtype(dtype, func):
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise ValueError(
            f"{func} expects a floating or complex dtype (float32, float64, ...), got {dtype}"
        )
    return dtype


def _as_jax(x, dtype):
    return jnp.asarray(np.asarray(x, dtype=np.float64), dtype=dtype)


_NAMES = {2: "(ny, nx)", 3: "(nz, ny, nx)"}


# -------------------------------------------------------------------------- Shepp-Logan
def _world_coords(shape):
    """Pixel-centre coordinates per array axis, ``linspace(-1, 1, n)`` as in MATLAB's
    ``phantom`` (0 for a single pixel): ``y`` points to row 0 (up), ``x`` and ``z`` increase
    with the index."""
    ndim = len(shape)
    coords = []
    for axis, n in enumerate(shape):
        c = np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
        coords.append(-c if axis == ndim - 2 else c)
    return coords


def _add_ellipsoid(out, coords, value, semi, centre, rot, supersample):
    """Add ``value`` times the fraction of each pixel inside one ellipsoid, on its bounding box.

    ``semi``, ``centre`` and the rows of ``rot`` (body axes in world coordinates) are in world
    order (x, y[, z]); world axis ``w`` is array axis ``ndim - 1 - w``.
    """
    ndim = out.ndim
    half = np.sqrt(((np.asarray(semi)[:, None] * rot) ** 2).sum(axis=0))  # box half-widths
    slices, local, steps = [], [], []
    for axis in range(ndim):
        w = ndim - 1 - axis
        c = coords[axis]
        step = (-2.0 if axis == ndim - 2 else 2.0) / max(len(c) - 1, 1)
        idx = np.nonzero(np.abs(c - centre[w]) <= half[w] + abs(step))[0]
        if idx.size == 0:
            return
        sl = slice(idx[0], idx[-1] + 1)
        slices.append(sl)
        local.append(c[sl] - centre[w])
        steps.append(step)
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    acc = np.zeros(tuple(s.stop - s.start for s in slices))
    for sub in itertools.product(offsets, repeat=ndim):
        d = []  # world displacement per world axis, broadcastable over the box
        for w in range(ndim):
            axis = ndim - 1 - w
            shape = [1] * ndim
            shape[axis] = -1
            d.append((local[axis] + sub[axis] * steps[axis]).reshape(shape))
        q = sum((sum(rot[m, w] * d[w] for w in range(ndim)) / semi[m]) ** 2 for m in range(ndim))
        acc += q <= 1.0
    out[tuple(slices)] += value * acc / supersample**ndim


def _rotation_z(phi_deg, ndim):
    """Rows: the body axes of an ellipse rotated by ``phi`` from +x toward +y (about z)."""
    p = math.radians(phi_deg)
    r = np.eye(ndim)
    r[:2, :2] = [[math.cos(p), math.sin(p)], [-math.sin(p), math.cos(p)]]
    return r


def shepp_logan(shape, *, supersample: int = 1, dtype=jnp.float32) -> jax.Array:
    """The modified Shepp-Logan head phantom in 2D or 3D, with values in ``[0, 1]``.

    A sum of uniform ellipses (ellipsoids) ``f(r) = sum_k v_k 1[|B_k (r - c_k)| <= 1]`` on the
    square (cube) ``[-1, 1]^d``, sampled at pixel centres ``linspace(-1, 1, n)`` along each
    axis (MATLAB's ``phantom`` convention), so non-square shapes stretch the head. The values
    are Toft's contrast-enhanced ones: skull 1, brain 0.2, ventricles 0, small features 0.3
    (0.1 and 0.4 where they overlap others). At 400 x 400 the 2D phantom equals
    ``skimage.data.shepp_logan_phantom()`` pixel for pixel.

    * 2D, ``shape = (ny, nx)``: Toft's (1996) table of Shepp & Logan's (1974) ten ellipses.
      Row 0 is the top (``+y``): shown with ``imshow`` the head is taller than wide and the
      three small ellipses are near the bottom, as in the textbook figure.
    * 3D, ``shape = (nz, ny, nx)``: the ten ellipsoids of Schabel's 3D modified Shepp-Logan
      phantom (after Kak & Slaney 1988), rotated about z as in 2D. The central slice
      ``[nz // 2]`` shows the 2D structure (the two small dots at ``y = +-0.1`` sit at
      ``z = 0.25``, off that plane).

    Args:
        shape: ``(ny, nx)`` or ``(nz, ny, nx)`` in pixels.
        supersample: average ``supersample^d`` point samples per pixel (partial-volume
            anti-aliasing of the edges); 1 samples each pixel centre.
        dtype: output dtype (float64 needs ``jax.enable_x64``).

    Returns:
        A JAX array of ``shape`` with values in ``[0, 1]``.

    Example:
        >>> from calcil import phantoms
        >>> p = phantoms.shepp_logan((128, 128))
        >>> p.shape, p.dtype, float(p.min()), float(p.max())
        ((128, 128), dtype('float32'), 0.0, 1.0)
        >>> round(float(p[64, 64]), 3)     # brain tissue at the centre
        0.2
        >>> phantoms.shepp_logan((32, 64, 64)).shape
        (32, 64, 64)
    """
    shape = _check_shape(shape, (2, 3), "shepp_logan", _NAMES)
    dtype = _check_dtype(dtype, "shepp_logan")
    if not _is_int(supersample) or supersample < 1:
        raise ValueError(f"shepp_logan expects supersample as a positive int, got {supersample!r}")
    ndim = len(shape)
    coords = _world_coords(shape)
    out = np.zeros(shape)
    for row in _SHEPP_LOGAN_2D if ndim == 2 else _SHEPP_LOGAN_3D:
        value, semi, centre, phi = row[0], row[1 : 1 + ndim], row[1 + ndim : -1], row[-1]
        rot = _rotation_z(phi, ndim)
        _add_ellipsoid(out, coords, value, semi, centre, rot, int(supersample))
    # 1 - 0.8 - 0.2 is -5.6e-17 in floating point: clip the round-off.
    return _as_jax(np.clip(out, 0.0, 1.0), dtype)


# -------------------------------------------------------------------------------- beads
def _check_radius(radius):
    """``(r_min, r_max)`` from a positive scalar or a ``(min, max)`` pair."""
    msg = (
        "beads expects radius as a positive number of pixels or a (min, max) pair with "
        f"0 < min <= max, got {radius!r}"
    )
    try:
        r = np.asarray(radius, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(msg) from None
    if r.shape == ():
        r = np.array([r, r])
    if r.shape != (2,) or not np.all(np.isfinite(r)) or not 0 < r[0] <= r[1]:
        raise ValueError(msg)
    return float(r[0]), float(r[1])


def _draw_candidates(key, block, count, r_min, r_max, shape):
    """``count`` radii and centres (pixel indices), centres uniform in ``[r, n - 1 - r]``."""
    k_r, k_c = jax.random.split(jax.random.fold_in(key, block))
    u_r = np.asarray(jax.random.uniform(k_r, (count,), dtype=jnp.float32), np.float64)
    u_c = np.asarray(jax.random.uniform(k_c, (count, len(shape)), dtype=jnp.float32), np.float64)
    radii = r_min + (r_max - r_min) * u_r
    span = np.asarray(shape, np.float64) - 1.0 - 2.0 * radii[:, None]
    return radii, radii[:, None] + u_c * span


def _place(key, n, r_min, r_max, shape, min_gap, max_tries):
    """Radii and centres of ``n`` beads; without overlaps by greedy rejection sampling."""
    radii, centres = [], []
    if n == 0:
        return np.zeros(0), np.zeros((0, len(shape)))
    block_size = n if min_gap is None else max(64, 4 * n)
    tried, block = 0, 0
    while len(radii) < n and tried < max_tries:
        count = min(block_size, max_tries - tried)
        r_new, c_new = _draw_candidates(key, block, count, r_min, r_max, shape)
        for r, c in zip(r_new, c_new, strict=True):
            if min_gap is not None and radii:
                dist = np.sqrt(((np.asarray(centres) - c) ** 2).sum(axis=1))
                if np.any(dist < np.asarray(radii) + r + min_gap):
                    continue
            radii.append(r)
            centres.append(c)
            if len(radii) == n:
                break
        tried += count
        block += 1
    if len(radii) < n:
        size = f"{r_min:g}" if r_min == r_max else f"{r_min:g} to {r_max:g}"
        raise ValueError(
            f"beads could place only {len(radii)} of the requested n={n} beads of radius "
            f"{size} px at least min_gap={min_gap} px apart in shape "
            f"{tuple(shape)} after {max_tries} candidates: lower n or the radius, reduce "
            "min_gap, raise max_tries, or pass min_gap=None to allow overlaps"
        )
    return np.asarray(radii), np.asarray(centres)


def beads(
    shape,
    n: int,
    radius,
    key,
    value: float = 1.0,
    background: float = 0.0,
    smooth: bool = False,
    *,
    min_gap: float | None = 2.0,
    max_tries: int | None = None,
    dtype=jnp.float32,
) -> jax.Array:
    """``n`` uniform disks (2D) or spheres (3D) at random positions: fluorescent or
    refractive-index beads.

    Each bead ``k`` has a radius ``r_k`` (pixels; drawn uniformly in ``[min, max]`` when
    ``radius`` is a pair) and a centre ``c_k`` drawn uniformly, per axis, in
    ``[r_k, n_axis - 1 - r_k]`` (pixel indices), so every bead lies inside the array. The image
    is ``background + (value - background) * o(r)`` with the occupancy ``o = max_k o_k``:
    overlapping beads do not add. Binary beads have ``o_k = 1[|r - c_k| <= r_k]``; with
    ``smooth`` the edge is a linear ramp over one pixel, ``o_k = clip(r_k + 1/2 - |r - c_k|,
    0, 1)``, a partial-volume approximation (the summed occupancy is the ball's volume
    ``4/3 pi r^3`` to a relative ``1/(4 r^2)``) whose value varies smoothly with ``c_k``.

    Positions and radii come from ``jax.random`` with ``key``: the same arguments and key give
    the same array. By default beads keep ``min_gap`` pixels between their surfaces (greedy
    rejection sampling over at most ``max_tries`` candidates, ``ValueError`` if they do not
    fit), so they are separate connected components; ``min_gap=None`` allows overlaps.

    Args:
        shape: ``(ny, nx)`` or ``(nz, ny, nx)`` in pixels.
        n: number of beads, an int ``>= 0``.
        radius: bead radius in pixels, or a ``(min, max)`` range drawn per bead.
        key: a ``jax.random`` key.
        value: the value inside a bead, e.g. 1.0 for fluorescence or a refractive-index
            contrast ``dn = 0.02`` for phase beads.
        background: the value outside the beads.
        smooth: anti-aliased edges (one-pixel linear ramp) instead of binary ones.
        min_gap: smallest surface-to-surface distance in pixels; ``None`` lets beads overlap.
        max_tries: candidate beads to draw before giving up (default ``1000 + 100 n``).
        dtype: output dtype (float64 needs ``jax.enable_x64``).

    Returns:
        A JAX array of ``shape`` with values between ``background`` and ``value``.

    Example:
        >>> import jax
        >>> from calcil import phantoms
        >>> x = phantoms.beads((32, 64, 64), n=5, radius=4.0, key=jax.random.key(0), value=0.02)
        >>> x.shape, float(x.min()), round(float(x.max()), 6)
        ((32, 64, 64), 0.0, 0.02)
        >>> round(float((x > 0).sum()) / (5 * 4 / 3 * 3.14159 * 4.0**3), 1)   # 5 balls' volume
        1.0
    """
    shape = _check_shape(shape, (2, 3), "beads", _NAMES)
    dtype = _check_dtype(dtype, "beads")
    if not _is_int(n) or n < 0:
        raise ValueError(f"beads expects n (number of beads) as an int >= 0, got {n!r}")
    r_min, r_max = _check_radius(radius)
    if 2.0 * r_max > min(shape) - 1:
        raise ValueError(
            f"beads of radius up to {r_max:g} px fit inside shape {shape} only if every axis "
            f"has at least 2 * radius + 1 = {2 * r_max + 1:g} pixels, got {min(shape)}"
        )
    _check_key(key, "beads")
    if min_gap is not None:
        min_gap = _nonnegative(min_gap, "beads", "min_gap", ">= 0 (pixels) or None")
    if max_tries is None:
        max_tries = 1000 + 100 * n
    if not _is_int(max_tries) or max_tries < n:
        raise ValueError(f"beads expects max_tries as an int >= n = {n}, got {max_tries!r}")
    radii, centres = _place(key, int(n), r_min, r_max, shape, min_gap, int(max_tries))

    occ = np.zeros(shape)
    for r, c in zip(radii, centres, strict=True):
        lo = np.maximum(np.floor(c - r - 1).astype(int), 0)
        hi = np.minimum(np.ceil(c + r + 1).astype(int) + 1, shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        grids = np.ogrid[box]
        dist = np.sqrt(sum((g - ci) ** 2 for g, ci in zip(grids, c, strict=True)))
        o = np.clip(r + 0.5 - dist, 0.0, 1.0) if smooth else (dist <= r).astype(np.float64)
        occ[box] = np.maximum(occ[box], o)
    value, background = float(value), float(background)
    out = background * (1.0 - occ) + value * occ
    return _as_jax(np.clip(out, min(value, background), max(value, background)), dtype)


# ------------------------------------------------------------------------- Siemens star
def siemens_star(
    shape,
    spokes: int = 36,
    *,
    radius: float | None = 0.95,
    profile: str = "binary",
    dtype=jnp.float32,
) -> jax.Array:
    """A Siemens star: ``spokes`` bright and ``spokes`` dark sectors about the array centre.

    With pixel coordinates ``x = j - (nx - 1) / 2`` and ``y = (ny - 1) / 2 - i`` (so the star
    is centred between pixels for even sizes) and ``theta = atan2(y, x)``:

    * ``profile="binary"``: ``s = 1`` where ``cos(spokes theta) >= 0``, else 0;
    * ``profile="sine"``: ``s = (1 + cos(spokes theta)) / 2`` (the sinusoidal star used for
      MTF measurements).

    The value changes sign ``2 spokes`` times around any circle about the centre, and the
    local period at radius ``rho`` pixels is ``2 pi rho / spokes`` pixels: the star resolves
    down to ``rho = spokes / pi`` for a two-pixel period. Pixels farther than
    ``radius * min(ny, nx) / 2`` from the centre are 0 (``radius=None``: no disk).

    Args:
        shape: ``(ny, nx)`` in pixels.
        spokes: number of bright sectors (and of dark ones), an int ``>= 1``.
        radius: radius of the star as a fraction of the half-size, or ``None``.
        profile: ``"binary"`` or ``"sine"``.
        dtype: output dtype (float64 needs ``jax.enable_x64``).

    Returns:
        A JAX array of ``shape`` with values in ``[0, 1]`` (only 0 and 1 when binary).

    Example:
        >>> from calcil import phantoms
        >>> s = phantoms.siemens_star((64, 64), spokes=8)
        >>> s.shape, sorted(set(s.ravel().tolist()))
        ((64, 64), [0.0, 1.0])
        >>> float(s[32, 50]), float(s[0, 32])    # on the +x axis; outside the disk
        (1.0, 0.0)
    """
    shape = _check_shape(shape, (2,), "siemens_star", _NAMES)
    dtype = _check_dtype(dtype, "siemens_star")
    if not _is_int(spokes) or spokes < 1:
        raise ValueError(f"siemens_star expects spokes as an int >= 1, got {spokes!r}")
    expected = "> 0 (a fraction of the half-size) or None"
    if radius is not None and _nonnegative(radius, "siemens_star", "radius", expected) == 0:
        raise ValueError(f"siemens_star expects radius {expected}, got {radius!r}")
    if profile not in ("binary", "sine"):
        raise ValueError(f"siemens_star expects profile 'binary' or 'sine', got {profile!r}")
    ny, nx = shape
    y = ((ny - 1) / 2 - np.arange(ny))[:, None]
    x = (np.arange(nx) - (nx - 1) / 2)[None, :]
    wave = np.cos(spokes * np.arctan2(y, x))
    out = (wave >= 0).astype(np.float64) if profile == "binary" else 0.5 + 0.5 * wave
    if radius is not None:
        out = np.where(x**2 + y**2 <= (radius * min(ny, nx) / 2) ** 2, out, 0.0)
    return _as_jax(np.clip(out, 0.0, 1.0), dtype)
