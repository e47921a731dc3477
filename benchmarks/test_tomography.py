"""Tomography benchmarks: calcil's Joseph projectors against scikit-image and hand-written JAX.

Parallel beam, ``n x n`` float32 image (the Shepp-Logan phantom resized to ``n``), ``n`` =
128, 256, 512, each with 180 and 720 angles spread evenly over 180 degrees. Groups
``parallel-<a>-angles-<direction>-<n>`` (``a`` the number of angles, ``direction`` forward or
adjoint) and their impls:

- ``impl="calcil"``: ``ParallelProjection((n, n), angles)`` (default detector, which covers
  the diagonal, and default angle chunks), ``jax.jit(lambda op, x: op(x))`` (``op.H(y)`` for
  the adjoint) with the operator passed as a pytree argument. The forward is Joseph's
  gather-based projector over chunks of angles; the adjoint, its exact transpose, is a
  pixel-driven gather (each pixel reads the detector pixels its footprint covers).
- ``impl="jax"``: the rotate-and-sum Radon transform a user would write without calcil: for
  each angle (``lax.map``), ``jax.scipy.ndimage.map_coordinates(order=1)`` of the image on
  the rotated ``n_detector x n_detector`` grid (unit steps along the ray and the detector),
  summed along the rays; the adjoint is ``jax.linear_transpose`` of it (scatter-adds). Jitted,
  the angles passed as an argument. The adjoint is timed at 180 angles only, one round per
  block: it takes 30-70x longer than the others, and keeps every angle's coordinates for its
  scatter (about 100 bytes per pixel and angle, 18 GiB at 512² x 720).
- ``impl="skimage"``: ``skimage.transform.radon(image, degrees, circle=False)`` (its output
  is ``(detector, angles)``), and for the adjoint the unfiltered back-projection
  ``iradon(sinogram, degrees, filter_name=None, circle=False, output_size=n)``, which is
  ``pi / (2 n_angles)`` times a pixel-driven back-projection.

skimage turns the image by ``+phi`` degrees where calcil's detector axis turns by ``-phi``,
so calcil and the hand-written side get ``-radians(degrees)``: all three compute the same
sinogram, checked before timing (relative L2 error): calcil against the hand-written side
(both centre the image at ``(n - 1) / 2``) to 1%, against skimage to 15% (skimage centres it
at pixel ``n // 2``, half a pixel away), and once, on the ``(n + 1)``-pixel grid whose centre
is skimage's, to 1%. The adjoints are checked likewise: calcil against the hand-written
transpose to 2%, against ``(2 n_angles / pi) iradon`` to 3%.

Cone beam, groups ``cone-forward-128`` and ``cone-adjoint-128`` (``impl="calcil"`` only): a
128³ volume, 180 source angles over 360 degrees, source and detector both at 3x the volume's
in-plane half-diagonal from the axis (magnification 2), a 128 x 192 detector with 2-voxel
pixels. Its adjoint is JAX's transpose of each chunk of angles' projection (a scatter-add),
accumulated chunk by chunk. Checked before timing by the dot test ``<P x, y> = <x, P^H y>``.

Every row records ``extra_info``: ``n_angles``, ``n_detector``, ``angle_chunk`` (calcil),
``elements`` (pixels x angles, voxels x angles for the cone beam: ``report.py --scaling``
gives the time per element, i.e. per pixel and angle, and fits its growth over ``n`` for each
``parallel-<a>-angles-<direction>`` family), ``ns_per_pixel_angle`` (the median over
``elements``) and ``peak_bytes``: for calcil and the hand-written side the compiled
program's memory from ``memory_analysis()`` (``memory_info`` in ``conftest.py``, with its
parts), for skimage the peak of Python's ``tracemalloc`` over one call (NumPy's allocations),
``extra_info["memory"]`` saying which.

The impls of a group are timed in alternating blocks (cycling through the orders of the
three) which ``report.py`` pools: ``report.py results.json`` gives calcil/jax,
``--baseline skimage`` calcil/skimage. Each block is a few rounds without warm-up rounds: the
agreement check has already compiled and run every function once. ``CALCIL_BENCH_ROUNDS``
scales the rounds per block (at least 1). The whole file takes about 4 minutes on 2 loaded
CPU cores.
"""

import functools
import itertools
import math
import tracemalloc

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
import skimage.transform
from conftest import describe, device_kind, memory_info, scaled_rounds

import calcil as cc
from calcil.benchmarking.standard import radon_by_hand  # rotate-and-sum, bilinear

IMPLS = ("calcil", "jax", "skimage")
ORDERS = list(itertools.permutations(IMPLS))
DIRECTIONS = ("forward", "adjoint")
# (n, angles): blocks per group (cycling through ORDERS) and rounds per block at
# CALCIL_BENCH_ROUNDS=1. One call takes from ~0.05 s (128², 180 angles) to ~5-10 s (512², 720
# angles) per impl on 2 loaded CPU cores; 256² x 180 angles, the headline pair, gets 6 blocks.
PARALLEL = {
    (128, 180): (6, 3),
    (128, 720): (3, 2),
    (256, 180): (6, 3),
    (256, 720): (3, 1),
    (512, 180): (3, 1),
    (512, 720): (2, 1),
}
# The hand-written adjoint: at 180 angles only, one round per block (see the docstring).
JAX_ADJOINT_ANGLES = (180,)
JAX_ADJOINT_ROUNDS = 1
CONE_N = 128
CONE_ANGLES = 180
CONE_DETECTOR = (128, 192)
CONE_SPACING = 2.0
CONE_ROUNDS = 2


def _parallel_blocks():
    for (n, n_angles), (blocks, _) in PARALLEL.items():
        for direction in DIRECTIONS:
            for block in range(blocks):
                for impl in ORDERS[block % len(ORDERS)]:
                    if impl == "jax" and not _has_jax_side(n_angles, direction):
                        continue
                    yield n, n_angles, direction, block, impl


def _has_jax_side(n_angles, direction):
    return direction == "forward" or n_angles in JAX_ADJOINT_ANGLES


# ---------------------------------------------------------------------- hand-written side
def _jax_sides(n, n_detector):
    """The hand-written forward and its ``jax.linear_transpose``, jitted for one geometry
    (the angles are an argument)."""
    image = jax.ShapeDtypeStruct((n, n), jnp.float32)

    @jax.jit
    def forward(x, angles):
        return radon_by_hand(x, angles, n_detector)

    @jax.jit
    def adjoint(y, angles):
        (back,) = jax.linear_transpose(lambda x: radon_by_hand(x, angles, n_detector), image)(y)
        return back

    return forward, adjoint


# ---------------------------------------------------------------------- calcil side
@jax.jit
def _calcil_forward(op, x):
    return op(x)


@jax.jit
def _calcil_adjoint(op, y):
    return op.H(y)


# ---------------------------------------------------------------------- inputs and checks
@functools.cache
def phantom(n: int) -> np.ndarray:
    """The Shepp-Logan phantom resized to ``n x n``, float32."""
    image = skimage.transform.resize(skimage.data.shepp_logan_phantom(), (n, n), anti_aliasing=True)
    return np.ascontiguousarray(image, dtype=np.float32)


def relative_error(ours, reference) -> float:
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    return float(np.linalg.norm(ours - reference) / np.linalg.norm(reference))


def traced_call(fn, *args):
    """``fn(*args)`` and the peak bytes Python's allocation tracing saw during the call
    (``tracemalloc``: NumPy's arrays among them)."""
    tracemalloc.start()
    try:
        out = fn(*args)
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _check_skimage_geometry(radians, skimage_sinogram, n):
    """calcil on the ``(n + 1)``-pixel grid (zero row and column appended), whose centre is
    skimage's pixel ``n // 2``, and with skimage's detector, centred on its pixel
    ``rows // 2``: the same sinogram to 1%."""
    rows = skimage_sinogram.shape[0]
    op = cc.operators.ParallelProjection((n + 1, n + 1), radians, n_detector=2 * (rows // 2) + 1)
    ours = op(jnp.pad(jnp.asarray(phantom(n)), ((0, 1), (0, 1))))[:, :rows]
    assert relative_error(ours, skimage_sinogram.T) < 0.01


# ---------------------------------------------------------------------- parallel beam
@functools.cache
def parallel_geometry(n: int, n_angles: int):
    """``(degrees, radians, op, sinogram)``: skimage's angles, calcil's, the operator and its
    sinogram of the phantom (``(angles, detector)``; computing it compiles the forward)."""
    degrees = np.linspace(0.0, 180.0, n_angles, endpoint=False)
    radians = (-np.deg2rad(degrees)).astype(np.float32)
    op = cc.operators.ParallelProjection((n, n), radians)
    return degrees, radians, op, np.asarray(_calcil_forward(op, jnp.asarray(phantom(n))))


@functools.lru_cache(maxsize=1)  # one group at a time: frees the previous group's arrays
def build_parallel(n: int, n_angles: int, direction: str):
    """``{impl: (fn, args, info)}`` for one group, checked to agree; every function has
    been called once (compiled, warm)."""
    degrees, radians, op, sinogram = parallel_geometry(n, n_angles)
    jax_forward, jax_adjoint = _jax_sides(n, op.n_detector)
    angles = jnp.asarray(radians)
    image = phantom(n)
    x = jnp.asarray(image)
    if direction == "forward":
        sides = {
            "calcil": (_calcil_forward, (op, x)),
            "jax": (jax_forward, (x, angles)),
            "skimage": (functools.partial(skimage.transform.radon, circle=False), (image, degrees)),
        }
    else:
        y = jnp.asarray(sinogram)
        iradon = functools.partial(
            skimage.transform.iradon, filter_name=None, circle=False, output_size=n
        )
        sides = {
            "calcil": (_calcil_adjoint, (op, y)),
            "jax": (jax_adjoint, (y, angles)),
            "skimage": (iradon, (np.ascontiguousarray(sinogram.T), degrees)),
        }
    fn, args = sides["calcil"]
    out = {"calcil": sinogram if direction == "forward" else np.asarray(fn(*args))}
    if not _has_jax_side(n_angles, direction):
        del sides["jax"]
    else:
        fn, args = sides["jax"]
        out["jax"] = np.asarray(fn(*args))
    fn, args = sides["skimage"]
    out["skimage"], skimage_peak = traced_call(fn, *args)
    if direction == "forward":
        assert out["calcil"].shape == out["jax"].shape == (n_angles, op.n_detector)
        assert out["skimage"].shape == (op.n_detector, n_angles)
        assert relative_error(out["calcil"], out["jax"]) < 0.01
        assert relative_error(out["calcil"], out["skimage"].T) < 0.15
        if (n, n_angles) == min(PARALLEL):
            _check_skimage_geometry(radians, out["skimage"], n)
    else:
        assert out["calcil"].shape == out["skimage"].shape == (n, n)
        if "jax" in out:
            assert relative_error(out["calcil"], out["jax"]) < 0.02
        assert relative_error(out["calcil"], (2 * n_angles / math.pi) * out["skimage"]) < 0.03
    memory = {
        impl: {**memory_info(fn, args), "memory": "memory_analysis"}
        for impl, (fn, args) in sides.items()
        if impl != "skimage"
    }
    memory["skimage"] = {"peak_bytes": skimage_peak, "memory": "tracemalloc"}
    info = {"n_angles": n_angles, "n_detector": op.n_detector, "angle_chunk": op.angle_chunk}
    return {impl: (fn, args, {**memory[impl], **info}) for impl, (fn, args) in sides.items()}


def time_calls(benchmark, fn, args, rounds, elements):
    """Time ``rounds`` calls of ``fn(*args)`` (already compiled and run once), waiting for the
    result, and record the median's cost per element (``ns_per_pixel_angle``)."""
    benchmark.pedantic(
        lambda: jax.block_until_ready(fn(*args)), rounds=rounds, warmup_rounds=0, iterations=1
    )
    benchmark.extra_info["elements"] = elements
    benchmark.extra_info["ns_per_pixel_angle"] = 1e9 * benchmark.stats.stats.median / elements


@pytest.mark.parametrize(("n", "n_angles", "direction", "block", "impl"), list(_parallel_blocks()))
def test_parallel(benchmark, n, n_angles, direction, block, impl):
    fn, args, info = build_parallel(n, n_angles, direction)[impl]
    describe(
        benchmark,
        group=f"parallel-{n_angles}-angles-{direction}-{n}",
        impl=impl,
        size=n,
        ndim=2,
        block=block,
        device=device_kind(),
        **info,
    )
    rounds = PARALLEL[n, n_angles][1]
    if impl == "jax" and direction == "adjoint":
        rounds = JAX_ADJOINT_ROUNDS
    time_calls(benchmark, fn, args, scaled_rounds(rounds, minimum=1), elements=n * n * n_angles)


# ---------------------------------------------------------------------- cone beam
@functools.lru_cache(maxsize=1)
def build_cone():
    """``{direction: (fn, args, info)}`` for the 128³ cone beam, the dot test passed."""
    n = CONE_N
    radius = 0.5 * math.hypot(n, n)  # the in-plane half-diagonal (dx = 1)
    op = cc.operators.ConeBeamProjection(
        (n, n, n),
        np.linspace(0.0, 2 * math.pi, CONE_ANGLES, endpoint=False),
        source_distance=3 * radius,
        detector_distance=3 * radius,
        detector_shape=CONE_DETECTOR,
        detector_spacing=CONE_SPACING,
    )
    kx, ky = jax.random.split(jax.random.key(0))
    x = jax.random.uniform(kx, op.input_shape, jnp.float32)
    y = jax.random.uniform(ky, op.output_shape, jnp.float32)
    lhs = jnp.vdot(_calcil_forward(op, x), y)
    rhs = jnp.vdot(x, _calcil_adjoint(op, y))
    np.testing.assert_allclose(float(lhs), float(rhs), rtol=1e-3)
    info = {
        "n_angles": CONE_ANGLES,
        "detector_shape": list(CONE_DETECTOR),
        "detector_spacing": CONE_SPACING,
        "source_distance": 3 * radius,
        "detector_distance": 3 * radius,
        "angle_chunk": op.angle_chunk,
        "memory": "memory_analysis",
    }
    sides = {"forward": (_calcil_forward, (op, x)), "adjoint": (_calcil_adjoint, (op, y))}
    return {d: (fn, args, {**info, **memory_info(fn, args)}) for d, (fn, args) in sides.items()}


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_cone(benchmark, direction):
    fn, args, info = build_cone()[direction]
    describe(
        benchmark,
        group=f"cone-{direction}-{CONE_N}",
        impl="calcil",
        size=CONE_N,
        ndim=3,
        device=device_kind(),
        **info,
    )
    rounds = scaled_rounds(CONE_ROUNDS, minimum=1)
    time_calls(benchmark, fn, args, rounds, elements=CONE_N**3 * CONE_ANGLES)
