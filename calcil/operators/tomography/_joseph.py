"""Joseph's ray-driven projector: line integrals through a pixel or voxel grid.

A ray ``p(t) = s + t d`` (``|d| = 1``) is sampled where it crosses the lines (planes in 3D)
of pixel centres across the in-plane axis it is most aligned with, ``x`` when
``|d_x| >= |d_y|``, else ``y``. At each crossing the image is interpolated linearly between
the two nearest pixel centres on that line (bilinearly between four voxels in 3D, across the
other in-plane axis and ``z``), zero outside the grid, and the samples are summed with the ray
length between crossings, ``dx / |d_major|``. This is P. M. Joseph, "An improved algorithm
for reprojecting rays through pixel images", IEEE Trans. Med. Imaging 1(3):192-196, 1982.

The projector is a gather (two or four per sample) and linear in the image, so its exact
adjoint is JAX's transpose of it (a scatter-add, :func:`transpose_over_angles`; the parallel
beam has an equivalent gather, see ``_beams``). It is differentiable in the ray geometry
(the interpolation weights are piecewise linear in the crossing points). Coordinates follow
calcil's tomography convention: pixel centres ``x_j = (j - (nx - 1) / 2) dx`` on the last
axis, ``y_i`` on the one before, ``z_k`` on the first of a volume.

Rays are processed in chunks of angles (:func:`map_angles`), so memory stays the image, the
sinogram, and one chunk's samples: no index array over all angles is ever built.
"""

import jax
import jax.numpy as jnp

__all__ = [
    "blocks",
    "default_chunk",
    "line_integrals_2d",
    "line_integrals_3d",
    "map_angles",
    "scan_sum",
    "sum_over_angles",
    "transpose_over_angles",
]

# Samples (rays x crossings) per chunk of angles on accelerators: about 2**22 samples keep a
# chunk's temporaries near 100 MB while giving each launch enough work.
_SAMPLES_PER_CHUNK = 2**22


def default_chunk(n_angles: int, samples_per_angle: int) -> int:
    """Angles per chunk: one on CPU, where it measured fastest (as fast as larger chunks for
    the projection, 2-3 times faster for small images and for gradients with respect to the
    angles); elsewhere as many as fit in ``_SAMPLES_PER_CHUNK`` samples, at least one."""
    if jax.default_backend() == "cpu":
        return 1
    return max(1, min(n_angles, _SAMPLES_PER_CHUNK // max(1, samples_per_angle)))


def blocks(x, chunk: int):
    """``x`` zero-padded along its first axis to whole chunks, as ``(n_chunks, chunk, ...)``."""
    n_chunks = -(-x.shape[0] // chunk)
    pad = n_chunks * chunk - x.shape[0]
    if pad:
        x = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)])
    return x.reshape((n_chunks, chunk, *x.shape[1:]))


def map_angles(fn, angles, chunk: int):
    """``jnp.stack([fn(a) for a in angles])`` evaluated ``chunk`` angles at a time.

    Each chunk is rematerialised (``jax.checkpoint``): differentiating the projection with
    respect to the geometry recomputes a chunk's sample indices and weights instead of
    storing them for every angle, so memory stays one chunk's worth.
    """
    n = angles.shape[0]
    project = jax.checkpoint(jax.vmap(fn))
    out = jax.lax.map(project, blocks(angles, chunk))
    return out.reshape((-1, *out.shape[2:]))[:n]


def scan_sum(term, xs):
    """``sum(term(x) for x in xs)`` over the leading axis of the pytree ``xs``, by
    ``lax.scan``. The first term starts the sum (rather than zeros) so that the carry has the
    type of the terms, also inside ``shard_map``, where they vary over the devices."""
    first = term(jax.tree.map(lambda x: x[0], xs))

    def step(total, x):
        return total + term(x), None

    rest = jax.tree.map(lambda x: x[1:], xs)
    return jax.lax.scan(step, first, rest)[0]


def sum_over_angles(fn, xs, chunk: int):
    """``sum(fn(x) for x in xs)`` accumulated ``chunk`` angles at a time: memory is one term
    plus one chunk, not one per angle. The padding of the last chunk repeats zeros, so
    ``fn`` must map zero data to zero."""
    chunks = jax.tree.map(lambda x: blocks(x, chunk), xs)
    return scan_sum(lambda block: jnp.sum(jax.vmap(fn)(block), axis=0), chunks)


def transpose_over_angles(project_one, sinogram, angles, image_shape):
    """The exact adjoint of ``sinogram[a] = project_one(image, angles[a])``: JAX's transpose
    of each angle's projection (a scatter-add), accumulated angle by angle, so memory is the
    image plus one angle's samples. One angle per step: on CPU, transposing chunks of
    several angles measured 1.5 to 4 times slower."""
    image = jax.ShapeDtypeStruct(image_shape, sinogram.dtype)

    def term(block):
        theta, rows = block
        return jax.linear_transpose(lambda x: project_one(x, theta), image)(rows)[0]

    return scan_sum(term, (angles, sinogram))


def _flat_padded(image, n_grid: int):
    """The grid axes (the first ``n_grid``) padded with one zero before and two after, then
    flattened: interpolation at any clipped coordinate in ``[-1, n]`` stays in range."""
    widths = ((1, 2),) * n_grid + ((0, 0),) * (image.ndim - n_grid)
    padded = jnp.pad(image, widths)
    return padded.reshape((-1, *image.shape[n_grid:]))


def _take(flat, index):
    return flat.at[index].get(mode="promise_in_bounds")


def _crossings(source, direction, length, n_major, centre_major, dx, n_steps):
    """Ray parameter ``t`` at the crossings with the major axis' lines of pixel centres, the
    step length ``dx / |d_major|`` and the mask of crossings on the segment ``[0, length]``."""
    step = jnp.arange(n_steps, dtype=source[0].dtype)
    s_major, d_major = source[0][..., None], direction[0][..., None]
    t = ((step - centre_major) * dx - s_major) / d_major
    valid = step < n_major
    if length is not None:
        valid = valid & (t >= 0) & (t <= length[..., None])
    return t, valid, dx / jnp.abs(direction[0])


def _fraction(index, n):
    """A fractional pixel index clipped to ``[-1, n]`` (``n`` may vary per ray), split into
    its floor (int32) and fraction: beyond the grid both neighbours are padding zeros."""
    q = jnp.clip(index, -1.0, n)
    q0 = jnp.floor(q)
    return q0.astype(jnp.int32), q - q0


def _in_plane(source, direction, length, ny, nx, dx):
    """Where each ray crosses the lines of pixel centres across its major in-plane axis.

    Returns ``t`` (ray parameter per crossing), the mask of valid crossings, the step length
    ``dx / |d_major|``, whether the ray is x-major (with a trailing axis), the ``(row, col)``
    grid indices of the lower interpolation neighbour, and the interpolation fraction along
    the minor axis. Only the first two components of ``source`` and ``direction`` are used.
    """
    x_major = jnp.abs(direction[0]) >= jnp.abs(direction[1])
    swap = lambda a, b: (jnp.where(x_major, a, b), jnp.where(x_major, b, a))  # noqa: E731
    s_major, s_minor = swap(source[0], source[1])
    d_major, d_minor = swap(direction[0], direction[1])
    n_major = jnp.where(x_major, nx, ny)[..., None]
    c_major = jnp.where(x_major, (nx - 1) / 2, (ny - 1) / 2)[..., None]
    c_minor = jnp.where(x_major, (ny - 1) / 2, (nx - 1) / 2)[..., None]
    n_minor = jnp.where(x_major, ny, nx)[..., None]
    n_steps = max(nx, ny)
    t, valid, step_length = _crossings(
        (s_major, s_minor), (d_major, d_minor), length, n_major, c_major, dx, n_steps
    )
    q = (s_minor[..., None] + t * d_minor[..., None]) / dx + c_minor
    q0, frac = _fraction(q, n_minor)
    major = jnp.minimum(jnp.arange(n_steps), n_major - 1)
    xm = x_major[..., None]
    return t, valid, step_length, xm, (jnp.where(xm, q0, major), jnp.where(xm, major, q0)), frac


def line_integrals_2d(image, source, direction, length, dx):
    """Line integrals of ``image[y, x, *batch]`` along rays (any leading ray shape).

    Args:
        image: ``(ny, nx, *batch)``; trailing axes are carried along (slices of a volume).
        source: ``(sx, sy)``, arrays of the ray shape: a point on each ray.
        direction: ``(dx, dy)``: unit directions, arrays of the ray shape or scalars (one
            direction for all rays, as in a parallel beam: cheaper).
        length: the segment length from ``source`` (``None``: the whole line).
        dx: pixel size.

    Returns:
        ``(*ray_shape, *batch)`` line integrals in the units of ``dx`` times the image's.
    """
    ny, nx = image.shape[:2]
    flat = _flat_padded(image, 2)
    width = nx + 3
    t, valid, step_length, xm, (row, col), frac = _in_plane(source, direction, length, ny, nx, dx)
    base = (row + 1) * width + col + 1
    neighbour = base + jnp.where(xm, width, 1)
    expand = (...,) + (None,) * (image.ndim - 2)
    # Interpolate, then mask: one fused pass over the samples (masking the weights first
    # makes XLA materialise them separately, several times slower on CPU).
    samples = _take(flat, base) * (1 - frac)[expand] + _take(flat, neighbour) * frac[expand]
    samples = jnp.where(valid[expand], samples, 0)
    return jnp.sum(samples, axis=t.ndim - 1) * step_length[expand]


def line_integrals_3d(volume, source, direction, length, dx):
    """Line integrals of ``volume[z, y, x, *batch]`` along rays (any leading ray shape).

    The major axis is ``x`` or ``y`` (the rays of a circular cone beam stay within 45 degrees
    of the rotation plane); each crossing interpolates bilinearly across the other in-plane
    axis and ``z``. Arguments as in :func:`line_integrals_2d`, with three components
    ``(x, y, z)`` for ``source`` and ``direction``.
    """
    nz, ny, nx = volume.shape[:3]
    flat = _flat_padded(volume, 3)
    width, plane = nx + 3, (nx + 3) * (ny + 3)
    t, valid, step_length, xm, (row, col), fq = _in_plane(source, direction, length, ny, nx, dx)
    z = (source[2][..., None] + t * direction[2][..., None]) / dx + (nz - 1) / 2
    z0, fz = _fraction(z, nz)
    base = (z0 + 1) * plane + (row + 1) * width + col + 1
    minor_stride = jnp.where(xm, width, 1)
    e = (...,) + (None,) * (volume.ndim - 3)
    fq, fz = fq[e], fz[e]
    low = _take(flat, base) * (1 - fq) + _take(flat, base + minor_stride) * fq
    high = _take(flat, base + plane) * (1 - fq) + _take(flat, base + plane + minor_stride) * fq
    samples = jnp.where(valid[e], low * (1 - fz) + high * fz, 0)
    return jnp.sum(samples, axis=t.ndim - 1) * step_length[e]
