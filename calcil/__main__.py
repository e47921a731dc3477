"""Command line: ``python -m calcil demo``, a complete TV deconvolution with a browser report,
and ``python -m calcil bench``, the standard benchmark set beside hand-written JAX.

The demo blurs a test image (scikit-image's camera photograph when scikit-image is installed,
otherwise the Shepp-Logan phantom) with a circular Gaussian PSF, adds Gaussian noise, and
recovers it by minimising

    0.5 ||A x - y||^2 + w TV(x),   x >= 0

with the :class:`~calcil.GradientSolver` (Adam, non-negativity projected after each step).
It writes TensorBoard logs and checkpoints under ``<out>/run-<time>/`` and an offline
``<out>/report.html`` (truth, measurement and reconstruction side by side, and the loss
history), and prints the PSNR of the measurement and of the reconstruction.
"""

import argparse
import os
import sys
import time
from pathlib import Path


def demo_image(size: int):
    """``(image, name)``: a ``size x size`` float32 image in [0, 1].

    scikit-image's camera photograph (512x512, resized) when scikit-image is installed,
    otherwise :func:`calcil.phantoms.shepp_logan`.
    """
    import numpy as np

    try:
        from skimage import data, transform
    except ImportError:
        from calcil import phantoms

        image = np.asarray(phantoms.shepp_logan((size, size)), np.float32)
        return np.clip(image, 0.0, 1.0), "the Shepp-Logan phantom"
    image = data.camera().astype(np.float64) / 255.0
    if image.shape != (size, size):
        image = transform.resize(image, (size, size), anti_aliasing=True)
    return np.clip(image, 0.0, 1.0).astype(np.float32), "scikit-image's camera photograph"


def gaussian_psf(size: int, sigma: float):
    """A normalised 2D Gaussian PSF of ``size`` x ``size`` pixels, centred at ``size // 2``."""
    import numpy as np

    r = np.arange(size) - size // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return (g / g.sum()).astype(np.float32)


def psnr(estimate, truth) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1]: ``10 log10(1 / MSE)``."""
    import numpy as np

    mse = np.mean((np.asarray(estimate, np.float64) - np.asarray(truth, np.float64)) ** 2)
    return float(10 * np.log10(1.0 / max(mse, 1e-30)))


def demo(
    size: int = 512,
    iterations: int = 300,
    out="calcil-demo",
    weight: float = 5e-4,
    sigma: float = 2.0,
    noise: float = 0.01,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Run the deconvolution demo; returns its figures and where it wrote its files."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    import calcil as cc

    t_start = time.perf_counter()
    truth, name = demo_image(size)
    psf_size = min(size, 2 * round(3 * sigma) + 1)
    A = cc.operators.Convolve(gaussian_psf(psf_size, sigma), (size, size), mode="circular")
    key = jax.random.key(seed)
    y = A(jnp.asarray(truth)) + noise * jax.random.normal(key, (size, size), jnp.float32)

    objective = cc.Objective(
        forward=lambda p, batch: A(p["x"]),
        loss=cc.losses.L2("y"),
        priors={"x": weight * cc.priors.TV(eps=1e-3)},
    )
    solver = cc.GradientSolver(
        objective, groups={"x": cc.Group(optax.adam(1e-2), project=cc.priors.NonNegative())}
    )
    out = Path(out)
    run_dir = out / time.strftime("run-%Y%m%d-%H%M%S")
    suffix = 1
    while run_dir.exists():  # two runs in the same second
        suffix += 1
        run_dir = out / time.strftime(f"run-%Y%m%d-%H%M%S-{suffix}")
    log_every = max(1, min(25, iterations))
    result = solver.run(
        {"x": jnp.clip(y, 0.0, None)},
        {"y": y},
        iterations=iterations,
        log_dir=run_dir,
        log_every=log_every,
        images={"reconstruction": lambda p: p["x"]},
        image_every=max(log_every, iterations // 4),
        checkpoint_every=max(log_every, iterations // 2),
        progress=progress,
    )
    x = np.asarray(result.params["x"])
    y = np.asarray(y)
    figures = {
        "size": size,
        "image": name,
        "iterations": result.steps,
        "status": result.status,
        "psnr_measurement": psnr(y, truth),
        "psnr_reconstruction": psnr(x, truth),
        "seconds": time.perf_counter() - t_start,
        "device": str(jax.devices()[0]),
        "log_dir": run_dir,
    }
    figures["report"] = write_report(out / "report.html", truth, y, x, result, figures)
    return figures


def write_report(path, truth, measurement, reconstruction, result, figures) -> Path:
    """An offline HTML page: the three images side by side (linked zoom) and the losses."""
    from calcil import viz

    gain = figures["psnr_reconstruction"] - figures["psnr_measurement"]
    images = viz.compare(
        {
            "truth": truth,
            f"measurement ({figures['psnr_measurement']:.1f} dB)": measurement,
            f"reconstruction ({figures['psnr_reconstruction']:.1f} dB)": reconstruction,
        },
        title=f"TV deconvolution of {figures['image']}: {gain:+.1f} dB",
    )
    losses = viz.history(result.history, title="objective and its terms per step")
    summary = (
        f"{figures['size']}x{figures['size']} pixels, {figures['iterations']} Adam steps on "
        f"{figures['device']} in {figures['seconds']:.1f} s; TensorBoard logs: "
        f"<code>tensorboard --logdir {Path(path).parent}</code>"
    )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>calcil demo</title></head>"
        "<body style='font-family: sans-serif'><h2>calcil demo: TV deconvolution</h2>"
        f"<p>{summary}</p>"
        + images.to_html(full_html=False, include_plotlyjs=True)
        + losses.to_html(full_html=False, include_plotlyjs=False)
        + "</body></html>"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def bench(parser, args) -> int:
    """``python -m calcil bench``: the standard set's table (and JSON)."""
    from calcil.benchmarking import standard

    size = args.size if args.size is not None else (256 if args.quick else 512)
    if size < 16:
        parser.error(f"--size must be at least 16 pixels, got {size}")
    unknown = [c for c in args.cases or () if c not in standard.CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {', '.join(standard.CASES)}")
    if args.json is not None:  # checked before minutes of timing, without creating the file
        target = Path(args.json)
        folder = target.parent if str(target.parent) else Path(".")
        writable = os.access(target, os.W_OK) if target.exists() else os.access(folder, os.W_OK)
        if target.is_dir() or not folder.is_dir() or not writable:
            parser.error(
                f"cannot write --json {args.json!r}: give a file path in an existing, "
                "writable folder"
            )
    print(f"calcil bench: size {size}{' (quick)' if args.quick else ''}", file=sys.stderr)
    result = standard.run_standard(
        size, quick=args.quick, cases=args.cases, log=lambda m: print(m, file=sys.stderr)
    )
    print(standard.standard_table(result))
    if args.json is not None:
        import json

        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        print(f"figures written to {args.json}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m calcil", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "demo",
        help="TV deconvolution of a blurred, noisy image, with TensorBoard logs and a report",
        description="Blur a test image, add noise, and recover it by TV-regularised gradient "
        "descent; writes TensorBoard logs, checkpoints and an HTML report.",
    )
    p.add_argument("--size", type=int, default=512, help="image side in pixels (default 512)")
    p.add_argument("--iterations", type=int, default=300, help="solver steps (default 300)")
    p.add_argument("--out", default="calcil-demo", help="output directory (default ./calcil-demo)")
    p.add_argument("--weight", type=float, default=5e-4, help="TV prior weight (default 5e-4)")
    p.add_argument("--sigma", type=float, default=2.0, help="blur sigma in pixels (default 2)")
    p.add_argument("--noise", type=float, default=0.01, help="noise sigma (default 0.01)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    b = sub.add_parser(
        "bench",
        help="time the standard operators and a solver beside hand-written JAX on this device",
        description="The standard set (Convolve 2D/3D, FFT, TV, AngularSpectrum, MultiSlice, "
        "ParallelProjection, a TV-deconvolution solver), each beside the hand-written JAX "
        "equivalent in the same process: times, ratios, rates, memory and the fraction of the "
        "device's copy bandwidth, as a Markdown table.",
    )
    b.add_argument("--size", type=int, default=None, help="image side (default 512; 256 quick)")
    b.add_argument("--json", default=None, metavar="PATH", help="also write the figures as JSON")
    b.add_argument("--quick", action="store_true", help="time less (a few minutes on a laptop CPU)")
    b.add_argument("--cases", nargs="+", default=None, metavar="CASE", help="run only these cases")
    args = parser.parse_args(argv)
    if args.command == "bench":
        return bench(parser, args)
    if args.size < 16:
        parser.error(f"--size must be at least 16 pixels, got {args.size}")
    if args.iterations < 1:
        parser.error(f"--iterations must be positive, got {args.iterations}")
    if args.weight < 0 or args.sigma <= 0 or args.noise < 0:
        parser.error("--weight and --noise must be >= 0 and --sigma > 0")
    r = demo(
        args.size,
        args.iterations,
        args.out,
        args.weight,
        args.sigma,
        args.noise,
        args.seed,
        progress=not args.no_progress,
    )
    print(
        f"calcil demo: TV deconvolution of {r['image']} ({r['size']}x{r['size']}, blur sigma "
        f"{args.sigma:g} px, noise {args.noise:g}) on {r['device']}\n"
        f"  PSNR measurement     {r['psnr_measurement']:6.2f} dB\n"
        f"  PSNR reconstruction  {r['psnr_reconstruction']:6.2f} dB "
        f"({r['psnr_reconstruction'] - r['psnr_measurement']:+.2f} dB, {r['iterations']} "
        f"steps, {r['status']})\n"
        f"  run time             {r['seconds']:.1f} s (compilation included)\n"
        f"  report               {r['report']}\n"
        f"  logs, checkpoints    {r['log_dir']}   (tensorboard --logdir {args.out})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
