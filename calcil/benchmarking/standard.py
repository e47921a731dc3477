"""The standard set behind ``python -m calcil bench``: calcil beside hand-written JAX.

Each case computes the same thing two ways, in the same process and on the same inputs:
with calcil's operator, prior or solver, and with the ``jnp`` code one would write by hand.
The two outputs are compared before anything is timed (a case whose sides disagree is an
error, not a row), then both are timed with the shared core (:mod:`.timing`), alternating.

Cases, for an image side ``n`` (``--size``):

- ``convolve-2d``: ``Convolve`` of a 15x15 Gaussian PSF, circular, ``(n, n)`` float32,
  against ``irfft2(K rfft2(x))``;
- ``convolve-3d``: a 7x7x7 Gaussian PSF on a ``(n/4)^3`` volume, against ``irfftn``;
- ``fft-2d``: ``FFT((n, n))`` (orthonormal) of complex64 against ``jnp.fft.fft2``;
- ``tv-value-grad``: ``jax.value_and_grad`` of ``TV(eps=1e-3)`` against ``jnp.diff`` code;
- ``angular-spectrum``: ``AngularSpectrum`` (500 nm, dx 0.5 µm, 100 µm) of complex64 against
  ``ifft2(H fft2(u))`` (``H`` the operator's transfer function, which calcil's tests check
  against the analytic one);
- ``multislice-grad``: ``value_and_grad`` of an intensity loss through ``MultiSlice`` of
  ``(n/16, n, n)`` (at least 4 slices) against a ``lax.scan`` of phase screens and
  propagations;
- ``parallel-projection``: ``ParallelProjection`` at ``n/4`` angles (at least 8) against
  rotate-and-sum with bilinear ``map_coordinates`` (a different discretisation: the
  sinograms agree to 2% in norm);
- ``tv-deconvolution``: ``GradientSolver`` (Adam, the fast path) for ``0.5 ||h * x - y||^2 +
  1e-3 TV(x)``, ``steps`` steps per run, against one ``jax.jit`` of a ``lax.scan`` of
  optax Adam steps (times per step).
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from calcil.benchmarking.bandwidth import device_bandwidth
from calcil.benchmarking.result import environment
from calcil.benchmarking.timing import CompiledCall, compile_call, time_calls

__all__ = ["CASES", "Case", "Row", "run_standard", "standard_table"]

MIB = 2**20
WAVELENGTH, DX = 0.5, 0.5  # µm


@dataclasses.dataclass(frozen=True)
class Case:
    """One comparison: both sides compiled and warmed, their outputs, how to compare them."""

    name: str
    what: str
    calcil: CompiledCall
    hand: CompiledCall
    outputs: tuple  # (calcil's, the hand-written one's), compared to ``rtol``
    rtol: float
    steps: int = 1  # work units per call (solver steps)


@dataclasses.dataclass(frozen=True)
class Row:
    """A case's figures: seconds per call or step (median), the ratio calcil /
    hand-written, calls or steps per second, peak memory of each program, and calcil's
    achieved bandwidth (bytes moved per call over its time: XLA's count for straight-line
    programs, the program's buffers, a lower bound, for programs with loops; none for the
    solver) and its fraction of the device's copy bandwidth."""

    case: str
    what: str
    calcil_seconds: float
    hand_seconds: float
    ratio: float
    per_second: float
    steps: int
    calcil_peak_bytes: int
    hand_peak_bytes: int
    calcil_compile_seconds: float
    hand_compile_seconds: float
    bandwidth: float | None
    bandwidth_fraction: float | None
    agreement: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------- helpers
def gaussian_kernel(size: int, sigma: float, ndim: int) -> np.ndarray:
    """A normalised Gaussian PSF of ``size`` pixels per axis, centred at ``size // 2``."""
    r = np.arange(size) - size // 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    out = g
    for _ in range(ndim - 1):
        out = np.multiply.outer(out, g)
    return (out / out.sum()).astype(np.float32)


def circular_spectrum(kernel: np.ndarray, shape) -> jax.Array:
    """``rfftn`` of ``kernel`` zero-padded to ``shape``, its centre rolled to index 0."""
    padded = np.zeros(shape, np.float32)
    padded[tuple(slice(0, k) for k in kernel.shape)] = kernel
    padded = np.roll(padded, [-(k // 2) for k in kernel.shape], tuple(range(kernel.ndim)))
    return jnp.asarray(np.fft.rfftn(padded).astype(np.complex64))


def _normal(key, shape, dtype=jnp.float32):
    if jnp.issubdtype(dtype, jnp.complexfloating):
        re, im = jax.random.normal(key, (2, *shape), jnp.float32)
        return jax.lax.complex(re, im)
    return jax.random.normal(key, shape, dtype)


def _pair(name, what, calcil_fn, calcil_args, hand_fn, hand_args, rtol, steps=1) -> Case:
    ours = compile_call(calcil_fn, calcil_args, f"{name} (calcil)")
    theirs = compile_call(hand_fn, hand_args, f"{name} (hand-written)")
    outputs = (ours.call(), theirs.call())
    return Case(name, what, ours, theirs, outputs, rtol, steps)


def _forward_pair(name, what, op, x, hand_fn, hand_args, rtol=1e-4) -> Case:
    """:func:`_pair` of an operator's forward ``op(x)``; the operator is an argument of the
    compiled program (a pytree: its arrays are not baked in), as the hand-written side's
    arrays are."""
    return _pair(name, what, lambda o, v: o(v), (op, x), hand_fn, hand_args, rtol)


# ---------------------------------------------------------------------- cases
def _convolve(name: str, kernel: np.ndarray, shape, seed: int) -> Case:
    import calcil as cc

    A = cc.operators.Convolve(kernel, shape, mode="circular")
    K = circular_spectrum(kernel, shape)
    x = _normal(jax.random.key(seed), shape)
    size = "x".join(str(k) for k in kernel.shape)
    return _forward_pair(
        name,
        f"Convolve {size} circular, {'x'.join(str(m) for m in shape)} float32",
        A,
        x,
        lambda k, v: jnp.fft.irfftn(k * jnp.fft.rfftn(v), s=v.shape),
        (K, x),
        1e-4,
    )


def convolve_2d(n: int) -> Case:
    return _convolve("convolve-2d", gaussian_kernel(15, 2.0, 2), (n, n), 0)


def convolve_3d(n: int) -> Case:
    m = max(8, n // 4)
    return _convolve("convolve-3d", gaussian_kernel(7, 1.5, 3), (m, m, m), 1)


def fft_2d(n: int) -> Case:
    import calcil as cc

    F = cc.operators.FFT((n, n), input_dtype=jnp.complex64)
    x = _normal(jax.random.key(2), (n, n), jnp.complex64)
    return _forward_pair(
        "fft-2d",
        f"FFT orthonormal, {n}x{n} complex64",
        F,
        x,
        lambda v: jnp.fft.fft2(v, norm="ortho"),
        (x,),
        1e-4,
    )


def tv_value_grad(n: int) -> Case:
    import calcil as cc

    eps = 1e-3
    tv = cc.priors.TV(eps=eps)

    def by_hand(v):
        dy = jnp.diff(v, axis=0, append=v[-1:])  # Neumann: the last difference is 0
        dx = jnp.diff(v, axis=1, append=v[:, -1:])
        return jnp.sum(jnp.sqrt(dy * dy + dx * dx + eps**2))

    x = _normal(jax.random.key(3), (n, n))
    return _pair(
        "tv-value-grad",
        f"TV value and gradient, {n}x{n} float32",
        jax.value_and_grad(lambda v: tv(v)),
        (x,),
        jax.value_and_grad(by_hand),
        (x,),
        1e-4,
    )


def angular_spectrum(n: int) -> Case:
    import calcil as cc

    P = cc.operators.AngularSpectrum(
        (n, n), dx=DX, wavelength=WAVELENGTH, distance=100.0, input_dtype=jnp.complex64
    )
    u = _normal(jax.random.key(4), (n, n), jnp.complex64)
    return _forward_pair(
        "angular-spectrum",
        f"AngularSpectrum 100 µm, {n}x{n} complex64",
        P,
        u,
        lambda h, v: jnp.fft.ifft2(h * jnp.fft.fft2(v)),
        (P.transfer, u),
        1e-4,
    )


def multislice_grad(n: int) -> Case:
    import calcil as cc

    nz = max(4, n // 16)
    dz = 1.0
    M = cc.operators.MultiSlice((nz, n, n), dx=DX, dz=dz, wavelength=WAVELENGTH)
    k0dz = 2 * np.pi * dz / WAVELENGTH
    key_true, key_start = jax.random.split(jax.random.key(5))
    dn_true = 0.01 * jax.random.uniform(key_true, (nz, n, n))
    dn = 0.01 * jax.random.uniform(key_start, (nz, n, n))

    def by_hand(h, v):
        def slice_step(u, dn_k):
            u = u * jnp.exp(1j * k0dz * dn_k)
            return jnp.fft.ifft2(jnp.fft.fft2(u) * h), None

        return jax.lax.scan(slice_step, jnp.ones((n, n), jnp.complex64), v)[0]

    measured = jnp.abs(jax.jit(by_hand)(M.transfer, dn_true)) ** 2

    def calcil_loss(op, v, target):
        return 0.5 * jnp.sum((jnp.abs(op(v)) ** 2 - target) ** 2)

    def hand_loss(h, v, target):
        return 0.5 * jnp.sum((jnp.abs(by_hand(h, v)) ** 2 - target) ** 2)

    return _pair(
        "multislice-grad",
        f"MultiSlice value and gradient, {nz}x{n}x{n} float32",
        jax.value_and_grad(calcil_loss, argnums=1),
        (M, dn, measured),
        jax.value_and_grad(hand_loss, argnums=1),
        (M.transfer, dn, measured),
        1e-3,
    )


def radon_by_hand(image, angles, n_detector: int):
    """Rotate-and-sum: bilinear samples of ``image`` on the ``n_detector²`` grid of each angle
    (unit steps), summed along the rays; ``(n_angles, n_detector)``, calcil's convention
    (the point ``u e_u + t e_r``, ``e_u = (cos, sin)``, ``e_r = (-sin, cos)`` in ``(x, y)``)."""
    ny, nx = image.shape
    u = jnp.arange(n_detector, dtype=image.dtype) - (n_detector - 1) / 2
    along, across = u[:, None], u[None, :]

    def one_angle(theta):
        c, s = jnp.cos(theta), jnp.sin(theta)
        x = across * c - along * s + (nx - 1) / 2
        y = across * s + along * c + (ny - 1) / 2
        samples = jax.scipy.ndimage.map_coordinates(image, [y, x], order=1, mode="constant")
        return samples.sum(axis=0)

    return jax.lax.map(one_angle, angles)


def parallel_projection(n: int) -> Case:
    import calcil as cc

    n_angles = max(8, n // 4)
    angles = np.linspace(0, np.pi, n_angles, endpoint=False).astype(np.float32)
    R = cc.operators.ParallelProjection((n, n), angles)
    n_detector = R.output_shape[-1]
    image = np.zeros((n, n), np.float32)
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    image[(yy / (0.35 * n)) ** 2 + (xx / (0.25 * n)) ** 2 <= 1] = 1.0  # an ellipse of ones
    image = jnp.asarray(image)

    return _forward_pair(
        "parallel-projection",
        f"ParallelProjection {n_angles} angles, {n}x{n} float32",
        R,
        image,
        lambda v, theta: radon_by_hand(v, theta, n_detector),
        (image, jnp.asarray(angles)),
        2e-2,
    )


def tv_deconvolution(n: int, steps: int) -> Case:
    import optax

    import calcil as cc
    from calcil.solvers.memory import chunk_memory

    lam, eps, lr = 1e-3, 1e-3, 1e-2
    kernel = gaussian_kernel(15, 2.0, 2)
    A = cc.operators.Convolve(kernel, (n, n), mode="circular")
    K = circular_spectrum(kernel, (n, n))
    key_x, key_noise = jax.random.split(jax.random.key(6))
    x_true = jax.random.uniform(key_x, (n, n))
    y = A(x_true) + 0.01 * jax.random.normal(key_noise, (n, n))
    x0 = jnp.zeros((n, n), jnp.float32)
    objective = cc.Objective(
        lambda p, b: A(p["x"]), cc.losses.L2("y"), priors={"x": lam * cc.priors.TV(eps=eps)}
    )
    solver = cc.GradientSolver(objective, optimizer=optax.adam(lr))
    init, data = {"x": x0}, {"y": y}

    def run_calcil():
        result = solver.run(init, data, iterations=steps, log_every=steps, progress=False)
        return jax.block_until_ready(result.params["x"])

    tic = time.perf_counter()
    run_calcil()  # compiles
    calcil_compile = time.perf_counter() - tic
    ours = CompiledCall(
        "tv-deconvolution (calcil)",
        run_calcil,
        calcil_compile,
        chunk_memory(solver, init, data),
        None,
    )
    opt = optax.adam(lr)

    def loss(x, k, target):
        r = jnp.fft.irfft2(k * jnp.fft.rfft2(x), s=x.shape) - target
        dy = jnp.diff(x, axis=0, append=x[-1:])
        dx = jnp.diff(x, axis=1, append=x[:, -1:])
        return 0.5 * jnp.sum(r * r) + lam * jnp.sum(jnp.sqrt(dy * dy + dx * dx + eps**2))

    def solve(x, k, target):
        def step(carry, _):
            x, state = carry
            grad = jax.grad(loss)(x, k, target)
            updates, state = opt.update(grad, state, x)
            return (optax.apply_updates(x, updates), state), None

        return jax.lax.scan(step, (x, opt.init(x)), length=steps)[0][0]

    theirs = compile_call(solve, (x0, K, y), "tv-deconvolution (hand-written)")
    outputs = (ours.call(), theirs.call())
    return Case(
        "tv-deconvolution",
        f"GradientSolver Adam, TV deconvolution {n}x{n}, per step",
        ours,
        theirs,
        outputs,
        1e-3,
        steps,
    )


CASES: dict[str, Callable[..., Case]] = {
    "convolve-2d": convolve_2d,
    "convolve-3d": convolve_3d,
    "fft-2d": fft_2d,
    "tv-value-grad": tv_value_grad,
    "angular-spectrum": angular_spectrum,
    "multislice-grad": multislice_grad,
    "parallel-projection": parallel_projection,
    "tv-deconvolution": tv_deconvolution,
}


# ---------------------------------------------------------------------- running
def _agreement(case: Case) -> float:
    """The largest relative difference ``||a - b|| / ||b||`` over the output leaves; an
    error when it exceeds the case's tolerance (a wrong answer is not a benchmark row)."""
    worst = 0.0
    ours, theirs = case.outputs
    leaves = jax.tree_util.tree_leaves
    for a, b in zip(leaves(ours), leaves(theirs), strict=True):
        a, b = np.asarray(a, np.complex128), np.asarray(b, np.complex128)
        if a.shape != b.shape:
            raise AssertionError(f"{case.name}: output shapes differ, {a.shape} and {b.shape}")
        scale = max(float(np.linalg.norm(b)), 1e-30)
        worst = max(worst, float(np.linalg.norm(a - b)) / scale)
    if not worst <= case.rtol:
        raise AssertionError(
            f"{case.name}: calcil and the hand-written code disagree (relative difference "
            f"{worst:.2e} > {case.rtol:.0e}); the case is not timed"
        )
    return worst


def run_standard(
    size: int = 512,
    quick: bool = False,
    cases=None,
    steps: int | None = None,
    min_time: float | None = None,
    blocks: int | None = None,
    log=None,
) -> dict:
    """Run the standard set at image side ``size``; the result as a dict (``header`` and
    ``rows``). ``quick`` times less (about 0.05 s per side in 2 blocks, 20 solver steps);
    ``cases`` picks case names from :data:`CASES`; ``log`` (e.g. ``print``) reports
    progress."""
    names = list(CASES) if cases is None else list(cases)
    unknown = [c for c in names if c not in CASES]
    if unknown:
        raise ValueError(f"unknown benchmark cases {unknown}; choose from {list(CASES)}")
    if not (isinstance(size, int) and size >= 16):
        raise ValueError(f"size must be an integer of at least 16 pixels, got {size!r}")
    steps = (20 if quick else 50) if steps is None else steps
    min_time = (0.05 if quick else 0.3) if min_time is None else min_time
    blocks = (2 if quick else 4) if blocks is None else blocks
    reference = device_bandwidth()
    header = {
        **environment(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "size": size,
        "quick": quick,
        "min_time": min_time,
        "blocks": blocks,
        "device_bandwidth": reference.bytes_per_second,
        "device_bandwidth_bytes": reference.nbytes,
    }
    rows = []
    for name in names:
        tic = time.perf_counter()
        build = CASES[name]
        case = build(size, steps) if name == "tv-deconvolution" else build(size)
        agreement = _agreement(case)
        timings = time_calls(
            {"calcil": case.calcil.call, "hand": case.hand.call},
            min_time=min_time,
            blocks=blocks,
        )
        ours, theirs = timings.median("calcil"), timings.median("hand")
        moved = case.calcil.bytes_moved[0] if case.steps == 1 else None
        bandwidth = None if moved is None else moved / ours
        rows.append(
            Row(
                case=name,
                what=case.what,
                calcil_seconds=ours / case.steps,
                hand_seconds=theirs / case.steps,
                ratio=ours / theirs,
                per_second=case.steps / ours,
                steps=case.steps,
                calcil_peak_bytes=case.calcil.memory["peak_bytes"],
                hand_peak_bytes=case.hand.memory["peak_bytes"],
                calcil_compile_seconds=case.calcil.compile_seconds,
                hand_compile_seconds=case.hand.compile_seconds,
                bandwidth=bandwidth,
                bandwidth_fraction=None
                if bandwidth is None
                else bandwidth / reference.bytes_per_second,
                agreement=agreement,
            ).to_dict()
        )
        if log is not None:
            log(f"  {name}: {time.perf_counter() - tic:.1f} s")
    return {"header": header, "rows": rows}


def standard_table(result: dict) -> str:
    """The Markdown table of :func:`run_standard`'s result, with its header line."""
    h = result["header"]
    lines = [
        f"calcil {h['calcil']} on {h['device']} ({h['backend']}, {h['device_count']} "
        f"device(s)); jax {h['jax']}, jaxlib {h['jaxlib']}, Python {h['python']}; {h['date']}",
        f"size {h['size']}{' (quick)' if h['quick'] else ''}; device copy bandwidth "
        f"{h['device_bandwidth'] / 1e9:.1f} GB/s",
        "",
        "| case | calcil (ms) | hand-written (ms) | ratio | per second | memory calcil / "
        "hand (MiB) | GB/s | of device |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        unit = "steps" if r["steps"] > 1 else "calls"
        memory = f"{r['calcil_peak_bytes'] / MIB:.1f} / {r['hand_peak_bytes'] / MIB:.1f}"
        gbs = "-" if r["bandwidth"] is None else f"{r['bandwidth'] / 1e9:.2f}"
        fraction = "-" if r["bandwidth_fraction"] is None else f"{r['bandwidth_fraction']:.0%}"
        lines.append(
            f"| {r['what']} | {1e3 * r['calcil_seconds']:.3g} | {1e3 * r['hand_seconds']:.3g} "
            f"| {r['ratio']:.2f} | {r['per_second']:.4g} {unit} | {memory} | {gbs} | "
            f"{fraction} |"
        )
    return "\n".join(lines)
