"""Independent references for the projections: Gaussian blobs and their exact line integrals.

A blob ``f(r) = exp(-|r - c|^2 / (2 sigma^2))`` integrates along any line at distance ``d``
from ``c`` to ``sqrt(2 pi) sigma exp(-d^2 / (2 sigma^2))``; the rays are built here in NumPy
from the geometry as documented, independently of the operators.
"""

import numpy as np


def grid(shape, dx):
    """Pixel-centre coordinates ``(x, y)`` (2D) or ``(x, y, z)`` (3D), NumPy float64."""
    axes = [(np.arange(n) - (n - 1) / 2) * dx for n in shape]
    mesh = np.meshgrid(*axes, indexing="ij")
    return tuple(reversed(mesh))  # last axis is x


def blob(shape, dx, centre, sigma):
    """A Gaussian blob sampled at the pixel centres of ``shape`` (centre in (x, y[, z]))."""
    coords = grid(shape, dx)
    r2 = sum((c - c0) ** 2 for c, c0 in zip(coords, centre, strict=True))
    return np.exp(-r2 / (2 * sigma**2))


def blob_integral(distance, sigma):
    return np.sqrt(2 * np.pi) * sigma * np.exp(-(distance**2) / (2 * sigma**2))


def frame(theta):
    """``e_u``, ``e_r`` (and ``e_z``) as 3-vectors for angle ``theta``."""
    e_u = np.array([np.cos(theta), np.sin(theta), 0.0])
    e_r = np.array([-np.sin(theta), np.cos(theta), 0.0])
    return e_u, e_r, np.array([0.0, 0.0, 1.0])


def distance_to_lines(point, origin, direction):
    """Distance from ``point`` to the lines ``origin + t direction`` (``(..., 3)`` arrays)."""
    direction = direction / np.linalg.norm(direction, axis=-1, keepdims=True)
    w = point - origin
    along = np.sum(w * direction, axis=-1, keepdims=True)
    return np.linalg.norm(w - along * direction, axis=-1)


def parallel_reference(angles, n_detector, spacing, centre, sigma):
    """``(n_angles, n_detector)`` exact projections of a 2D blob, parallel beam."""
    u = (np.arange(n_detector) - (n_detector - 1) / 2) * spacing
    c = np.array([*centre, 0.0])
    out = []
    for theta in angles:
        e_u, e_r, _ = frame(theta)
        d = distance_to_lines(c, u[:, None] * e_u, np.broadcast_to(e_r, (u.size, 3)))
        out.append(blob_integral(d, sigma))
    return np.array(out)


def fan_reference(angles, d_s, d_d, n_detector, spacing, centre, sigma):
    """Exact fan-beam projections of a 2D blob (detector beyond the blob)."""
    u = (np.arange(n_detector) - (n_detector - 1) / 2) * spacing
    c = np.array([*centre, 0.0])
    out = []
    for theta in angles:
        e_u, e_r, _ = frame(theta)
        source = -d_s * e_r
        pixels = d_d * e_r + u[:, None] * e_u
        out.append(blob_integral(distance_to_lines(c, source, pixels - source), sigma))
    return np.array(out)


def cone_reference(angles, d_s, d_d, detector_shape, spacing, centre, sigma):
    """Exact cone-beam projections ``(n_angles, rows, cols)`` of a 3D blob."""
    rows, cols = detector_shape
    v = (np.arange(rows) - (rows - 1) / 2) * spacing[0]
    u = (np.arange(cols) - (cols - 1) / 2) * spacing[1]
    c = np.asarray(centre, dtype=float)
    out = []
    for theta in angles:
        e_u, e_r, e_z = frame(theta)
        source = -d_s * e_r
        pixels = d_d * e_r + u[None, :, None] * e_u + v[:, None, None] * e_z
        out.append(blob_integral(distance_to_lines(c, source, pixels - source), sigma))
    return np.array(out)
