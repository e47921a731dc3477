"""A registry of operator factories: every operator in the catalogue runs through the generic
tests (adjoint, jit/vmap, pytree, declared shapes and dtypes) in every dtype it supports.

A factory ``factory(dtype, input_dtype)`` (see :func:`register`) takes a dtype (float32,
float64, complex64 or complex128) for the arrays it builds and the ``input_dtype`` to build
the operator with: ``dtype`` itself (pinned), or ``None`` for the entries registered with
``follows=True``, where ``dtype`` is real and the operator's dtype follows the data (the
generic tests then check it on real and complex inputs of that precision). An entry is
``(build, dtype)``; factories are called inside ``jax.enable_x64`` for 64-bit dtypes.
Register new operators here: ``test_registry_covers_catalogue`` fails for a public operator
class that no factory builds.
"""

import jax
import jax.numpy as jnp
import numpy as np

from calcil import operators as O
from calcil._internal.dtypes import real_dtype_of
from tests.helpers import randn

LINEAR = {}
NONLINEAR = {}
DTYPES = ("float32", "float64", "complex64", "complex128")
FOLLOW_DTYPES = ("float32", "float64")


def _builder(factory, pinned):
    """``build(dtype)``: the factory's operator, pinned to ``dtype`` or following the data."""

    def build(dtype):
        return factory(dtype, dtype if pinned else None)

    build.follows = not pinned
    return build


def register(name, registry=LINEAR, dtypes=DTYPES, follows=False):
    """Register ``factory(dtype, input_dtype)`` pinned to each of ``dtypes``, and with
    ``follows=True`` also unpinned (``input_dtype=None``) in single and double precision.

    An entry is ``(build, dtype)`` with ``build(dtype)`` the operator."""

    def decorate(factory):
        for dtype in dtypes:
            registry[f"{name}-{dtype}"] = (_builder(factory, True), jnp.dtype(dtype))
        if follows:
            for dtype in FOLLOW_DTYPES:
                entry = (_builder(factory, False), jnp.dtype(dtype))
                registry[f"{name}-follows-{dtype}"] = entry
        return factory

    return decorate


def _weights(shape, dtype, seed=0):
    """Deterministic weights of ``dtype`` (complex when ``dtype`` is complex)."""
    return jnp.asarray(randn(np.random.default_rng(seed), shape, dtype))


def _psf(shape, dtype):
    """A positive real kernel in the precision of ``dtype``."""
    return jnp.abs(_weights(shape, real_dtype_of(dtype), seed=1))


@register("identity", follows=True)
def _(dtype, input_dtype):
    return O.Identity((6, 7), input_dtype)


@register("diagonal", follows=True)
def _(dtype, input_dtype):
    return O.Diagonal(_weights((6, 7), dtype), input_dtype=input_dtype)


@register("diagonal-broadcast", follows=True)
def _(dtype, input_dtype):
    return O.Diagonal(_weights((3, 1, 7), dtype), input_shape=(6, 7), input_dtype=input_dtype)


@register("mask", follows=True)
def _(dtype, input_dtype):
    return O.Mask(np.arange(42).reshape(6, 7) % 3 == 0, input_dtype=input_dtype)


@register("fft")
def _(dtype, input_dtype):
    return O.FFT((6, 8), input_dtype=input_dtype)


@register("fft-centered-backward-axis")
def _(dtype, input_dtype):
    return O.FFT((3, 6, 5), axes=(-1,), norm="backward", centered=True, input_dtype=input_dtype)


@register("fft-forward-norm")
def _(dtype, input_dtype):
    return O.FFT((5, 6), norm="forward", input_dtype=input_dtype)


for _mode in ("circular", "full", "same", "valid"):

    @register(f"convolve-{_mode}", follows=True)
    def _(dtype, input_dtype, mode=_mode):
        return O.Convolve(_psf((3, 4), dtype), (9, 10), mode=mode, input_dtype=input_dtype)


@register("convolve-complex-kernel")
def _(dtype, input_dtype):
    kernel = _weights((3, 3), jnp.promote_types(dtype, jnp.complex64), seed=2)
    return O.Convolve(kernel, (2, 8, 8), input_dtype=input_dtype)


@register("convolve-batch-kernel", follows=True)
def _(dtype, input_dtype):
    return O.Convolve(
        _psf((3, 4, 5), dtype), (1, 8, 9), axes=(1, 2), mode="same", input_dtype=input_dtype
    )


@register("crop", follows=True)
def _(dtype, input_dtype):
    return O.Crop((2, 9, 10), (5, 6), input_dtype=input_dtype)


@register("pad", follows=True)
def _(dtype, input_dtype):
    return O.Pad((5, 6), ((1, 2), (3, 0)), input_dtype=input_dtype)


@register("subsample", follows=True)
def _(dtype, input_dtype):
    return O.Subsample((9, 10), (2, 3), offset=(1, 2), input_dtype=input_dtype)


@register("bin-sum", follows=True)
def _(dtype, input_dtype):
    return O.Bin((6, 9), (2, 3), input_dtype=input_dtype)


@register("bin-mean", follows=True)
def _(dtype, input_dtype):
    return O.Bin((2, 6, 9), (3, 3), reduce="mean", input_dtype=input_dtype)


@register("gather", follows=True)
def _(dtype, input_dtype):
    return O.Gather(
        (6, 7), (np.array([0, 5, 5, 2]), np.array([1, 6, 6, -1])), input_dtype=input_dtype
    )


@register("finite-difference-periodic", follows=True)
def _(dtype, input_dtype):
    return O.FiniteDifference((5, 6, 4), input_dtype=input_dtype)


@register("finite-difference-neumann", follows=True)
def _(dtype, input_dtype):
    return O.FiniteDifference((5, 6), axes=(1,), boundary="neumann", input_dtype=input_dtype)


@register("difference-gram-periodic", follows=True)
def _(dtype, input_dtype):
    return O.FiniteDifference((5, 6, 4), input_dtype=input_dtype).gram


@register("difference-gram-neumann", follows=True)
def _(dtype, input_dtype):
    return O.FiniteDifference((5, 6), boundary="neumann", input_dtype=input_dtype).gram


@register("wavelet-db2", dtypes=("complex64",), follows=True)
def _(dtype, input_dtype):
    return O.Wavelet((16, 16), "db2", levels=2, input_dtype=input_dtype)


@register("wavelet-db4-3d-axes", dtypes=("float64",))
def _(dtype, input_dtype):
    return O.Wavelet((8, 8, 8), "db4", levels=1, axes=(0, 2), input_dtype=input_dtype)


# Dtype resolution: operators that follow the data composed with, added to or scaled into
# complex-pinned ones take complex input of the same precision.
@register("composition-crop-of-propagator")
def _(dtype, input_dtype):
    propagator = O.AngularSpectrum((8, 10), 0.2, 0.5, 3.0, input_dtype=input_dtype)
    return O.Crop((8, 10), (5, 6)) @ propagator


@register("composition-propagator-of-pad", dtypes=("complex64", "complex128"))
def _(dtype, input_dtype):
    return O.AngularSpectrum((8, 10), 0.2, 0.5, 3.0) @ O.Pad((5, 6), ((1, 2), (3, 1)))


@register("composition-fft-of-subsample", dtypes=("complex64", "complex128"))
def _(dtype, input_dtype):
    return O.FFT((5, 3), norm="backward") @ O.Subsample((9, 10), (2, 3), offset=(0, 1))


@register("convolve-real-kernel-of-complex-diagonal", dtypes=("complex64", "complex128"))
def _(dtype, input_dtype):
    return O.Convolve(_psf((3, 4), dtype), (9, 10)) @ O.Diagonal(_weights((9, 10), dtype))


@register("sum-of-identity-and-complex-diagonal", dtypes=("complex64", "complex128"))
def _(dtype, input_dtype):
    return O.Identity((6, 7)) + O.Diagonal(_weights((6, 7), dtype))


@register("complex-scaled-bin", dtypes=("complex64", "complex128"))
def _(dtype, input_dtype):
    return (0.5 + 2j) * O.Bin((6, 9), (2, 3), reduce="mean")


@register("from-function")
def _(dtype, input_dtype):
    return O.from_function(lambda x: jnp.cumsum(x[::-1], axis=0), (5, 3), dtype, linear=True)


@register("composition-crop-convolve-pad", follows=True)
def _(dtype, input_dtype):
    pad = O.Pad((8, 8), 2, input_dtype=input_dtype)
    conv = O.Convolve(_psf((3, 3), dtype), (12, 12), input_dtype=input_dtype)
    return O.Crop((12, 12), (8, 8), input_dtype=input_dtype) @ conv @ pad


@register("composition-fft-of-real")
def _(dtype, input_dtype):
    # A real-output operator feeding a complex one: the adjoint must take a real part.
    return O.FFT((6, 6), input_dtype=jnp.promote_types(dtype, jnp.complex64)) @ O.Bin(
        (12, 6), (2, 1), input_dtype=input_dtype
    )


@register("sum-and-scale", follows=True)
def _(dtype, input_dtype):
    scalar = 1.5 - 0.5j if jnp.issubdtype(dtype, jnp.complexfloating) else 1.5
    fd = O.FiniteDifference((6, 7), input_dtype=input_dtype)
    return scalar * fd - 0.5 * fd


@register("adjoint-of-convolve", follows=True)
def _(dtype, input_dtype):
    return O.Convolve(_psf((3, 3), dtype), (6, 7), mode="full", input_dtype=input_dtype).H


@register("gram-of-fft")
def _(dtype, input_dtype):
    return (
        O.Diagonal(_weights((6, 6), dtype))
        @ O.FFT((6, 6), norm="backward", input_dtype=input_dtype).gram
    )


@register("gram-of-circular-convolve", follows=True)
def _(dtype, input_dtype):
    return O.Convolve(_psf((3, 3), dtype), (6, 7), input_dtype=input_dtype).gram


@register("gram-of-complex-kernel-convolve")
def _(dtype, input_dtype):
    kernel = _weights((3, 3), jnp.promote_types(dtype, jnp.complex64), seed=3)
    return O.Convolve(kernel, (6, 7), input_dtype=input_dtype).gram


# Propagators: small odd/even grids with evanescent frequencies (dx < wl / 2) and an active
# band limit, so every branch of the transfer function is adjoint-tested.
@register("angular-spectrum")
def _(dtype, input_dtype):
    return O.AngularSpectrum((8, 10), dx=0.2, wavelength=0.5, distance=6.0, input_dtype=input_dtype)


@register("angular-spectrum-stack-padded-batch")
def _(dtype, input_dtype):
    return O.AngularSpectrum(
        (2, 7, 8),
        0.3,
        0.5,
        np.array([-2.0, 0.0, 3.5]),
        n_medium=1.33,
        pad_factor=1.5,
        input_dtype=input_dtype,
    )


@register("angular-spectrum-no-bandlimit")
def _(dtype, input_dtype):
    return O.AngularSpectrum((9, 8), 0.4, 0.5, -0.5, bandlimit=False, input_dtype=input_dtype)


@register("fresnel-padded")
def _(dtype, input_dtype):
    return O.Fresnel(
        (8, 9), dx=0.5, wavelength=0.5, distance=4.0, pad_factor=2, input_dtype=input_dtype
    )


@register("fresnel-stack")
def _(dtype, input_dtype):
    return O.Fresnel((6, 6), 0.5, 0.6, np.array([1.0, -3.0]), n_medium=1.5, input_dtype=input_dtype)


@register("fraunhofer")
def _(dtype, input_dtype):
    return O.Fraunhofer((7, 8), dx=1.0, wavelength=0.5, distance=1e3, input_dtype=input_dtype)


@register("fraunhofer-phase")
def _(dtype, input_dtype):
    return O.Fraunhofer(
        (2, 6, 5), 1.0, 0.5, 1e3, n_medium=1.33, phase=True, input_dtype=input_dtype
    )


# Pupils: odd/even grids; the first cutoff na / wl = 1.2 falls exactly on a grid frequency
# (3 / (10 * 0.25)), the second between; Zernike phases on a batch of fields.
@register("pupil")
def _(dtype, input_dtype):
    return O.Pupil((9, 10), dx=0.25, wavelength=0.5, na=0.6, input_dtype=input_dtype)


@register("pupil-zernike-batch")
def _(dtype, input_dtype):
    coefficients = np.linspace(-1.0, 1.5, 11)
    return O.Pupil((2, 11, 10), 0.25, 0.5, 0.7, zernike=coefficients, input_dtype=input_dtype)


# ---------------------------------------------------------------------- nonlinear
@register("shift", follows=True)
def _(dtype, input_dtype):
    return O.Shift((6, 8), [0.3, -1.6], input_dtype=input_dtype)


@register("shift-odd-one-axis", follows=True)
def _(dtype, input_dtype):
    return O.Shift((3, 7, 5), 2.4, axes=1, input_dtype=input_dtype)


@register("interpolate", follows=True)
def _(dtype, input_dtype):
    coordinates = np.random.default_rng(5).uniform(-1.5, 7.5, (2, 4, 5))
    return O.Interpolate((6, 7), coordinates, input_dtype=input_dtype)


@register("interpolate-batch-1d", dtypes=("float32", "float64"), follows=True)
def _(dtype, input_dtype):
    return O.Interpolate((3, 9), [[-0.5, 0.0, 3.3, 8.0, 8.7]], input_dtype=input_dtype)


@register("stack", follows=True)
def _(dtype, input_dtype):
    members = [
        O.Shift((5, 6), [0.5, 1.0], input_dtype=input_dtype),
        O.Convolve(_psf((3, 3), dtype), (5, 6), input_dtype=input_dtype),
        O.Identity((5, 6), input_dtype),
    ]
    return O.Stack(members)


@register("block-diagonal", follows=True)
def _(dtype, input_dtype):
    members = [
        O.Crop((6, 7), (4, 4), input_dtype=input_dtype),
        O.Crop((6, 7), (4, 4), start=(2, 3), input_dtype=input_dtype),
    ]
    return O.BlockDiagonal(members)


@register("incoherent-imaging", dtypes=("float32", "float64"), follows=True)
def _(dtype, input_dtype):
    return O.IncoherentImaging((2, 12, 10), 0.1, 0.5, 0.6, [0, 0.2, 0, 0.5], input_dtype)


# Tomography: small grids, off-grid angles (both Joseph branches), detectors wider and
# narrower than the image, a detector inside the object (clipped fan-beam segments).
_ANGLES = np.array([0.1, 0.9, 1.7, 2.6, 3.9])
_REAL = ("float32", "float64")


@register("parallel-projection", dtypes=_REAL, follows=True)
def _(dtype, input_dtype):
    return O.ParallelProjection((6, 7), _ANGLES, dx=0.8, input_dtype=input_dtype)


@register("parallel-projection-3d", dtypes=_REAL, follows=True)
def _(dtype, input_dtype):
    return O.ParallelProjection(
        (3, 6, 5), _ANGLES[:3], n_detector=6, detector_spacing=1.3, input_dtype=input_dtype
    )


@register("fan-beam-projection", dtypes=_REAL, follows=True)
def _(dtype, input_dtype):
    return O.FanBeamProjection((6, 7), _ANGLES, 8.0, 3.0, 9, 1.4, input_dtype=input_dtype)


@register("fan-beam-projection-short-detector", dtypes=_REAL, follows=True)
def _(dtype, input_dtype):
    return O.FanBeamProjection(
        (5, 6), _ANGLES, 6.0, 1.0, 5, 1.1, dx=1.2, angle_chunk=2, input_dtype=input_dtype
    )


@register("cone-beam-projection", dtypes=_REAL, follows=True)
def _(dtype, input_dtype):
    return O.ConeBeamProjection(
        (4, 6, 5), _ANGLES[:3], 9.0, 4.0, (5, 7), (1.2, 1.5), input_dtype=input_dtype
    )


@register("partially-coherent-dpc", NONLINEAR, dtypes=("complex64", "complex128"))
def _(dtype, input_dtype):
    patterns = [O.source_points("half", 0.3, 0.5, 3, angle=a) for a in (0.0, np.pi)]
    return O.PartiallyCoherent((10, 12), 0.25, 0.5, 0.6, patterns, [0, 0.2], input_dtype)


@register("fourier-ptychography", NONLINEAR, dtypes=("complex64", "complex128"))
def _(dtype, input_dtype):
    leds = O.led_array((3, 3), pitch=2.0, distance=10.0)
    return O.FourierPtychography((16, 12), 0.25, 0.5, 0.3, leds, 2, [0, 0.1, -0.2], input_dtype)


@register("ptychography", NONLINEAR, dtypes=("complex64", "complex128"))
def _(dtype, input_dtype):
    probe = _weights((5, 6), np.result_type(dtype, np.complex64), seed=4)
    return O.Ptychography((11, 13), probe, [[0.0, 0.0], [2.5, 3.25], [6.0, 7.0]], input_dtype)


@register("intensity", NONLINEAR)
def _(dtype, input_dtype):
    return O.Intensity((5, 6), dtype)


@register("exp", NONLINEAR)
def _(dtype, input_dtype):
    return O.Exp((5, 6), dtype)


@register("intensity-of-crop", NONLINEAR, dtypes=("float32", "float64"), follows=True)
def _(dtype, input_dtype):
    return O.Intensity() @ O.Crop((6, 7), (4, 5), input_dtype=input_dtype)


@register("intensity-of-fft", NONLINEAR)
def _(dtype, input_dtype):
    return O.Intensity() @ O.FFT((6, 6), input_dtype=input_dtype)


@register("from-function-nonlinear", NONLINEAR)
def _(dtype, input_dtype):
    return O.from_function(lambda x: jnp.sin(x) * x, (4, 5), dtype)


@register("multislice", NONLINEAR)
def _(dtype, input_dtype):
    return O.MultiSlice(
        (3, 8, 7), dx=0.2, dz=0.5, wavelength=0.5, n_medium=1.33, input_dtype=input_dtype
    )


@register("multislice-no-remat", NONLINEAR)
def _(dtype, input_dtype):
    return O.MultiSlice((3, 8, 7), 0.2, 0.5, 0.5, 1.33, remat=False, input_dtype=input_dtype)


@register("multislice-batch-illumination-segments", NONLINEAR)
def _(dtype, input_dtype):
    tilt = np.exp(2j * np.pi * np.arange(8) / 8 * np.array([[0.0], [1.0]]))  # 2 plane waves
    illumination = np.broadcast_to(tilt[:, None, :], (2, 6, 8))
    return O.MultiSlice(
        (5, 6, 8), 0.25, 0.4, 0.5, illumination=illumination, remat=2, input_dtype=input_dtype
    )


def build(entry):
    """Build a registry entry (call it inside :func:`x64_for`)."""
    factory, dtype = entry
    return factory(dtype)


def follows(entry) -> bool:
    """True for an entry built without ``input_dtype`` (its dtype follows the data)."""
    return entry[0].follows


def x64_for(entry):
    return jax.enable_x64(real_dtype_of(entry[1]) == jnp.float64)
