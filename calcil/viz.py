"""Interactive plotly figures: slices of volumes, 4D data, complex fields, comparisons, losses.

Every viewer takes NumPy or JAX arrays and returns a ``plotly.graph_objects.Figure``: show it
in a notebook, or save a self-contained page with ``fig.write_html(path)`` (plotly.js is
embedded, so the page works offline).

- Images are heatmaps with equal aspect, the first row at the top (like an image) and a colour
  bar. One colour range holds for every slice and panel, so colours do not jump with a slider.
- Sliders: every step carries its slice (base64 float32) and applies it with ``Plotly.restyle``
  (plotly.js runs it on the browser's next repaint). The figures have no plotly animation
  frames (``fig.frames`` is empty), so several sliders act independently and nothing plays by
  itself when the page opens.
- Large data is strided for a responsive page, and the title says so, e.g.
  "(every 2nd slice, shown at 1/2 resolution)".

Keyword arguments shared by the image viewers:

- ``dx``: pixel size, one number or one per array axis, in ``unit`` (default ``"µm"``); the
  axes are then physical. Without it they count pixels of the original array.
- ``title``: figure title (a default names what is shown); ``colorscale``: default ``"gray"``.
- ``zmin``, ``zmax``: colour range; by default the range of the finite values shown.
- ``part``: what to show of complex data: ``"abs"`` (the default, named in the title),
  ``"phase"``, ``"real"`` or ``"imag"``.
- ``max_slices`` (64): steps per slider; ``max_size`` (512): pixels per image side;
  ``max_voxels`` (2**23, about 45 MB of HTML): values carried by the figure in all. Over a
  limit, the axis with the most samples is strided first.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["compare", "complex_image", "history", "orthoslices", "slices", "volume4d"]

MAX_SLICES = 64
MAX_SIZE = 512
MAX_VOXELS = 2**23

_AXES = "zyx"
_PARTS = {"abs": np.abs, "phase": np.angle, "real": np.real, "imag": np.imag}
_PART_NAMES = {"abs": "amplitude", "phase": "phase", "real": "real part", "imag": "imaginary part"}
_CROSSHAIR = dict(color="rgba(255,64,64,0.7)", width=1)


# ---------------------------------------------------------------------------------- helpers
def _array(a, fn: str, ndim: int, axes: str, hint: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != ndim:
        raise ValueError(f"{fn} expects a {ndim}D array ({axes}), got shape {a.shape}. {hint}")
    return a


def _part(a: np.ndarray, part: str | None, fn: str) -> tuple[np.ndarray, str]:
    """The real float32 array to display and a note for the title."""
    if part is None:
        if not np.iscomplexobj(a):
            return np.asarray(a, np.float32), ""
        part = "abs"
    if part not in _PARTS:
        raise ValueError(f"{fn}: part must be one of {sorted(_PARTS)} or None, got {part!r}")
    return np.asarray(_PARTS[part](a), np.float32), _PART_NAMES[part]


def _spacing(dx, axes: str, fn: str) -> tuple:
    """One pixel size per axis (all ``None`` without ``dx``)."""
    if dx is None:
        return (None,) * len(axes)
    d = np.atleast_1d(np.asarray(dx, dtype=float))
    if d.ndim != 1 or len(d) not in (1, len(axes)) or not np.all(d > 0):
        raise ValueError(
            f"{fn}: dx must be a positive number or {len(axes)} of them (one per axis "
            f"{', '.join(axes)}), got {dx!r}"
        )
    return tuple(float(v) for v in np.broadcast_to(d, (len(axes),)))


def _limits(**limits) -> None:
    for name, value in limits.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _strides(sizes, limits, max_voxels: int, cost=math.prod) -> list[int]:
    """Strides keeping each count within its limit and ``cost(counts)`` within the budget."""
    strides = [max(1, math.ceil(n / lim)) for n, lim in zip(sizes, limits, strict=True)]
    while True:
        counts = [math.ceil(n / s) for n, s in zip(sizes, strides, strict=True)]
        if cost(counts) <= max_voxels or max(counts) <= 1:
            return strides
        strides[counts.index(max(counts))] += 1  # thin the axis with the most samples


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _title(title, default: str, what: str, steps: Mapping[str, int], pixels) -> dict:
    """Layout title: the given or default text, the part shown and the striding, if any."""
    notes = [what] if what else []
    notes += [f"every {_ordinal(s)} {name}" for name, s in steps.items() if s > 1]
    if any(s > 1 for s in pixels):
        res = f"1/{pixels[0]}" if len(set(pixels)) == 1 else " × ".join(f"1/{s}" for s in pixels)
        notes.append(f"shown at {res} resolution")
    text = (title if title is not None else default) + (f" ({', '.join(notes)})" if notes else "")
    return dict(text=text.strip(), x=0.5, xanchor="center")


def _range(arrays, zmin, zmax) -> tuple[float, float]:
    lo = hi = None
    if zmin is None or zmax is None:
        finite = np.concatenate([a[np.isfinite(a)] for a in arrays])
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        lo, hi = (lo - 0.5, hi + 0.5) if hi <= lo else (lo, hi)
    lo, hi = (lo if zmin is None else float(zmin)), (hi if zmax is None else float(zmax))
    if not lo < hi:
        raise ValueError(f"zmin must be below zmax, got zmin={lo} and zmax={hi}")
    return lo, hi


def _typed(a: np.ndarray) -> dict:
    """A 2D slice as a plotly.js typed-array spec (base64 float32), for slider steps."""
    a = np.ascontiguousarray(a, dtype="<f4")
    data = base64.b64encode(a.tobytes()).decode("ascii")
    return {"dtype": "f4", "bdata": data, "shape": ", ".join(map(str, a.shape))}


def _coords(n: int, stride: int, d) -> np.ndarray:
    """Positions of the shown samples on an axis: pixel indices, or physical with ``d``."""
    return np.arange(0, n, stride) * (1.0 if d is None else d)


def _label(name: str, d, unit: str) -> str:
    return f"{name} ({unit})" if d is not None else f"{name} (pixel)"


def _value(index: int, d, unit: str) -> str:
    return str(index) if d is None else f"{index * d:.4g} {unit}".rstrip()


def _figure(rows=1, cols=1, **kw) -> go.Figure:
    """A figure with subplots; plotly is imported on first use, so ``import calcil`` stays light."""
    from plotly.subplots import make_subplots

    return make_subplots(rows=rows, cols=cols, **kw)


def _heatmap(z, x, y, coloraxis="coloraxis", **kw) -> go.Heatmap:
    import plotly.graph_objects as go

    return go.Heatmap(z=np.asarray(z, np.float32), x=x, y=y, coloraxis=coloraxis, **kw)


def _coloraxis(lo, hi, colorscale, **colorbar) -> dict:
    return dict(cmin=lo, cmax=hi, colorscale=colorscale, colorbar=colorbar)


def _image_axes(fig, row, col, xtitle, ytitle, matches=False) -> None:
    """Equal aspect, first row at the top; with ``matches``, zoom linked to the first panel."""
    sub = fig.get_subplot(row, col)
    linked = matches and sub.yaxis.anchor != "x"
    fig.update_xaxes(title_text=xtitle, constrain="domain", row=row, col=col)
    fig.update_yaxes(
        title_text=ytitle,
        autorange="reversed",
        scaleanchor=sub.yaxis.anchor,
        scaleratio=1,
        constrain="domain",
        row=row,
        col=col,
    )
    if linked:
        fig.update_xaxes(matches="x", row=row, col=col)
        fig.update_yaxes(matches="y", row=row, col=col)


def _step(label: str, data: dict, traces: list, layout: dict | None = None) -> dict:
    """A slider step that restyles ``traces`` with ``data`` (and relayouts ``layout``).

    It also sets the traces' ``meta`` to its label. A slider whose steps set a single
    attribute is bound by plotly.js to that attribute's value, which turns the whole slice
    into a lookup key on every redraw; a second attribute switches that binding off.
    """
    data = {**data, "meta": [label] * len(traces)}
    if layout is None:
        return dict(method="restyle", label=label, args=[data, traces])
    return dict(method="update", label=label, args=[data, layout, traces])


def _slider(steps, active, prefix, x=0.0, length=1.0) -> dict:
    many = len(steps) > 16  # tick labels would overlap: hide them, the current value shows
    return dict(
        steps=steps,
        active=active,
        x=x,
        len=length,
        pad=dict(t=50),
        currentvalue=dict(prefix=prefix, font=dict(color="#444")),
        font=dict(color="rgba(0,0,0,0)" if many else "#444"),
    )


# ---------------------------------------------------------------------------------- viewers
def slices(
    vol,
    axis: int = 0,
    *,
    dx=None,
    unit: str = "µm",
    title: str | None = None,
    colorscale="gray",
    zmin: float | None = None,
    zmax: float | None = None,
    part: str | None = None,
    max_slices: int = MAX_SLICES,
    max_size: int = MAX_SIZE,
    max_voxels: int = MAX_VOXELS,
) -> go.Figure:
    """A volume (z, y, x) one slice at a time, with a slider along ``axis``.

    One heatmap (trace 0) starts at the central slice; each slider step replaces its data.
    ``dx`` is one number or (dz, dy, dx); the other keywords are described in the module doc.

    Example:
        >>> import numpy as np
        >>> from calcil import viz
        >>> fig = viz.slices(np.random.rand(8, 32, 32))
        >>> len(fig.data), len(fig.layout.sliders[0].steps)
        (1, 8)
    """
    a = _array(vol, "slices", 3, "z, y, x", "For 4D (t, z, y, x) data use volume4d.")
    if not isinstance(axis, int) or not -3 <= axis < 3:
        raise ValueError(f"slices: axis must be 0, 1 or 2 (or -3..-1), got {axis!r}")
    _limits(max_slices=max_slices, max_size=max_size, max_voxels=max_voxels)
    axis %= 3
    order = [axis] + [i for i in range(3) if i != axis]
    names = [_AXES[i] for i in order]
    d = [_spacing(dx, _AXES, "slices")[i] for i in order]
    a = np.moveaxis(a, axis, 0)
    s = _strides(a.shape, (max_slices, max_size, max_size), max_voxels)
    shown, what = _part(a[:: s[0], :: s[1], :: s[2]], part, "slices")
    lo, hi = _range([shown], zmin, zmax)
    active = len(shown) // 2
    fig = _figure()
    x, y = _coords(a.shape[2], s[2], d[2]), _coords(a.shape[1], s[1], d[1])
    fig.add_trace(_heatmap(shown[active], x, y))
    _image_axes(fig, 1, 1, _label(names[2], d[2], unit), _label(names[1], d[1], unit))
    steps = [
        _step(_value(i, d[0], unit), {"z": [_typed(plane)]}, [0])
        for i, plane in zip(range(0, a.shape[0], s[0]), shown, strict=True)
    ]
    fig.update_layout(
        title=_title(title, f"slices along {names[0]}", what, {"slice": s[0]}, s[1:]),
        coloraxis=_coloraxis(lo, hi, colorscale),
        sliders=[_slider(steps, active, f"{names[0]} = ")],
    )
    return fig


def orthoslices(
    vol,
    *,
    position=None,
    dx=None,
    unit: str = "µm",
    title: str | None = None,
    colorscale="gray",
    zmin: float | None = None,
    zmax: float | None = None,
    part: str | None = None,
    crosshair: bool = True,
    max_slices: int = MAX_SLICES,
    max_size: int = MAX_SIZE,
    max_voxels: int = MAX_VOXELS,
) -> go.Figure:
    """The three orthogonal planes through a point of a volume (z, y, x), side by side.

    Traces 0, 1, 2 are the y-x plane at z, the z-x plane at y and the z-y plane at x, each
    with its own slider underneath (z, y, x). ``position`` is the (z, y, x) index of the point
    (default: the centre; the nearest slider step when strided). Red lines (``crosshair``)
    mark where the other two planes cut each panel and follow the sliders. Other keywords:
    see the module doc.

    Example:
        >>> import numpy as np
        >>> from calcil import viz
        >>> fig = viz.orthoslices(np.random.rand(8, 16, 24))
        >>> len(fig.data), [len(s.steps) for s in fig.layout.sliders]
        (3, [8, 16, 24])
    """
    a = _array(vol, "orthoslices", 3, "z, y, x", "For 4D (t, z, y, x) data use volume4d.")
    _limits(max_slices=max_slices, max_size=max_size, max_voxels=max_voxels)
    d, n = _spacing(dx, _AXES, "orthoslices"), a.shape
    point = [k // 2 for k in n] if position is None else list(position)
    if len(point) != 3 or not all(0 <= int(p) < k for p, k in zip(point, n, strict=True)):
        raise ValueError(f"orthoslices: position must be (z, y, x) within {n}, got {position!r}")

    def cost(c):  # slider steps carry planes: cz*py*px + cy*pz*px + cx*pz*py
        return c[0] * c[4] * c[5] + c[1] * c[3] * c[5] + c[2] * c[3] * c[4]

    s = _strides(n + n, (max_slices,) * 3 + (max_size,) * 3, max_voxels, cost)
    q, p = s[:3], s[3:]  # slider strides, pixel strides
    stacks = [  # the planes each slider steps through: (step, rows, columns)
        _part(a[:: q[0], :: p[1], :: p[2]], part, "orthoslices")[0],
        _part(a[:: p[0], :: q[1], :: p[2]], part, "orthoslices")[0].transpose(1, 0, 2),
        _part(a[:: p[0], :: p[1], :: q[2]], part, "orthoslices")[0].transpose(2, 0, 1),
    ]
    what = _part(a[:1, :1, :1], part, "orthoslices")[1]
    lo, hi = _range(stacks, zmin, zmax)
    index = [np.arange(0, k, st) for k, st in zip(n, q, strict=True)]
    active = [int(np.abs(ix - int(c)).argmin()) for ix, c in zip(index, point, strict=True)]
    co = [_coords(k, st, dk) for k, st, dk in zip(n, p, d, strict=True)]  # pixels: z, y, x
    at = [ix * (1.0 if dk is None else dk) for ix, dk in zip(index, d, strict=True)]  # steps
    panels = [(2, 1), (2, 0), (1, 0)]  # (column axis, row axis) of each panel
    widths = [np.ptp(co[c]) + (co[c][1] - co[c][0] if len(co[c]) > 1 else 1) for c, _ in panels]
    fig = _figure(
        rows=1,
        cols=3,
        column_widths=[w / sum(widths) for w in widths],
        horizontal_spacing=0.08,
        subplot_titles=("y–x plane", "z–x plane", "z–y plane"),
    )
    for k, (c, r) in enumerate(panels):
        fig.add_trace(_heatmap(stacks[k][active[k]], co[c], co[r]), 1, k + 1)
        _image_axes(fig, 1, k + 1, _label(_AXES[c], d[c], unit), _label(_AXES[r], d[r], unit))
    # shapes[i] = (panel, axis whose slider moves it, horizontal line?)
    lines = [(0, 1, True), (0, 2, False), (1, 0, True), (1, 2, False), (2, 0, True), (2, 1, False)]
    shapes = []
    for k, ax, horizontal in lines:
        span = co[panels[k][0] if horizontal else panels[k][1]]
        half = (span[1] - span[0]) / 2 if len(span) > 1 else 0.5
        ends, v = (span[0] - half, span[-1] + half), at[ax][active[ax]]
        (x0, x1), (y0, y1) = (ends, (v, v)) if horizontal else ((v, v), ends)
        ref = "" if k == 0 else str(k + 1)
        shapes.append(
            dict(
                type="line",
                xref="x" + ref,
                yref="y" + ref,
                x0=x0,
                x1=x1,
                y0=y0,
                y1=y1,
                line=_CROSSHAIR,
                visible=crosshair,
            )
        )
    sliders = []
    for ax in range(3):
        moved = [(j, "y" if hz else "x") for j, (_, a_, hz) in enumerate(lines) if a_ == ax]
        steps = [
            _step(
                _value(int(i), d[ax], unit),
                {"z": [_typed(plane)]},
                [ax],
                {f"shapes[{j}].{c}{e}": v for j, c in moved for e in (0, 1)},
            )
            for i, v, plane in zip(index[ax], at[ax], stacks[ax], strict=True)
        ]
        dom = fig.get_subplot(1, ax + 1).xaxis.domain
        sliders.append(_slider(steps, active[ax], f"{_AXES[ax]} = ", dom[0], dom[1] - dom[0]))
    strided = {f"{c} slice": st for c, st in zip(_AXES, q, strict=True)}
    fig.update_layout(
        title=_title(title, "orthogonal slices", what, strided, p),
        coloraxis=_coloraxis(lo, hi, colorscale),
        shapes=shapes,
        sliders=sliders,
    )
    return fig


def volume4d(
    vol_tzyx,
    *,
    dx=None,
    unit: str = "µm",
    dt=None,
    t_unit: str = "",
    title: str | None = None,
    colorscale="gray",
    zmin: float | None = None,
    zmax: float | None = None,
    part: str | None = None,
    max_slices: int = MAX_SLICES,
    max_size: int = MAX_SIZE,
    max_voxels: int = MAX_VOXELS,
) -> go.Figure:
    """Volumes over time (t, z, y, x) with two independent sliders: time (left), depth (right).

    It works in plain plotly.js (no animation frames, no custom JavaScript): the figure holds
    one heatmap per shown z slice (traces ``0 .. nz-1``), only one of them visible. A step of
    the t slider replaces the data of every z trace by the volume at that time; a step of the
    z slider changes which trace is visible. So each slider keeps the other's position. The
    t steps carry the whole (strided) 4D array, which ``max_voxels`` bounds. There is no play
    button: it would need animation frames, which cannot keep the z position.

    ``dt`` and ``t_unit`` label the time steps; ``dx`` is one number or (dz, dy, dx); other
    keywords: see the module doc. The figure opens at t = 0 and the central z slice.

    Example:
        >>> import numpy as np
        >>> from calcil import viz
        >>> fig = viz.volume4d(np.random.rand(5, 6, 16, 16))
        >>> len(fig.data), [len(s.steps) for s in fig.layout.sliders]
        (6, [5, 6])
    """
    a = _array(vol_tzyx, "volume4d", 4, "t, z, y, x", "For one volume use slices/orthoslices.")
    _limits(max_slices=max_slices, max_size=max_size, max_voxels=max_voxels)
    d = _spacing(dx, _AXES, "volume4d")
    s = _strides(a.shape, (max_slices, max_slices, max_size, max_size), max_voxels)
    shown, what = _part(a[:: s[0], :: s[1], :: s[2], :: s[3]], part, "volume4d")
    lo, hi = _range([shown], zmin, zmax)
    traces = list(range(shown.shape[1]))
    z0 = len(traces) // 2
    fig = _figure()
    x, y = _coords(a.shape[3], s[3], d[2]), _coords(a.shape[2], s[2], d[1])
    for k in traces:
        fig.add_trace(_heatmap(shown[0, k], x, y, visible=k == z0, name=f"z slice {k}"))
    _image_axes(fig, 1, 1, _label("x", d[2], unit), _label("y", d[1], unit))
    t_steps = [
        _step(
            str(i) if dt is None else f"{i * dt:.4g} {t_unit}".rstrip(),
            {"z": [_typed(plane) for plane in stack]},
            traces,
        )
        for i, stack in zip(range(0, a.shape[0], s[0]), shown, strict=True)
    ]
    z_steps = [
        _step(_value(i, d[0], unit), {"visible": [k == j for k in traces]}, traces)
        for j, i in enumerate(range(0, a.shape[1], s[1]))
    ]
    fig.update_layout(
        title=_title(title, "volume over time", what, {"time point": s[0], "z slice": s[1]}, s[2:]),
        coloraxis=_coloraxis(lo, hi, colorscale),
        sliders=[_slider(t_steps, 0, "t = ", 0.0, 0.47), _slider(z_steps, z0, "z = ", 0.53, 0.47)],
    )
    return fig


def complex_image(
    u,
    *,
    dx=None,
    unit: str = "µm",
    title: str | None = None,
    colorscale="gray",
    phase_colorscale="twilight",
    zmin: float | None = None,
    zmax: float | None = None,
    max_size: int = MAX_SIZE,
) -> go.Figure:
    """A complex field (y, x): amplitude (grey) beside phase (cyclic colours), zoom linked.

    Traces: amplitude (``coloraxis``, range ``zmin``/``zmax``) and phase (``coloraxis2``, from
    -pi to pi in ``phase_colorscale``: use a cyclic one, ``"twilight"``, ``"phase"``,
    ``"edge"``...). A real array has phase 0 or pi. Other keywords: see the module doc.

    Example:
        >>> import numpy as np
        >>> from calcil import viz
        >>> fig = viz.complex_image(np.exp(1j * np.linspace(0, 6, 64)).reshape(8, 8))
        >>> [t.name for t in fig.data], fig.layout.coloraxis2.cmax == np.pi
        (['amplitude', 'phase'], True)
    """
    a = _array(u, "complex_image", 2, "y, x", "For volumes use slices(..., part='phase').")
    _limits(max_size=max_size)
    d = _spacing(dx, "yx", "complex_image")
    s = _strides(a.shape, (max_size, max_size), MAX_VOXELS)
    shown = a[:: s[0], :: s[1]]
    amplitude, phase = np.abs(shown).astype(np.float32), np.angle(shown).astype(np.float32)
    lo, hi = _range([amplitude], zmin, zmax)
    fig = _figure(
        rows=1, cols=2, horizontal_spacing=0.16, subplot_titles=("amplitude", "phase (rad)")
    )
    x, y = _coords(a.shape[1], s[1], d[1]), _coords(a.shape[0], s[0], d[0])
    fig.add_trace(_heatmap(amplitude, x, y, name="amplitude"), 1, 1)
    fig.add_trace(_heatmap(phase, x, y, coloraxis="coloraxis2", name="phase"), 1, 2)
    for col in (1, 2):
        _image_axes(fig, 1, col, _label("x", d[1], unit), _label("y", d[0], unit), matches=True)
    ticks = [-np.pi, -np.pi / 2, 0, np.pi / 2, np.pi]
    fig.update_layout(
        title=_title(title, "complex field", "", {}, s),
        coloraxis=_coloraxis(lo, hi, colorscale, x=fig.layout.xaxis.domain[1] + 0.01),
        coloraxis2=_coloraxis(
            -np.pi,
            np.pi,
            phase_colorscale,
            tickvals=ticks,
            ticktext=["−π", "−π/2", "0", "π/2", "π"],
        ),
    )
    return fig


def compare(
    images: Mapping[str, object],
    *,
    dx=None,
    unit: str = "µm",
    title: str | None = None,
    colorscale="gray",
    zmin: float | None = None,
    zmax: float | None = None,
    part: str | None = None,
    cols: int | None = None,
    max_size: int = MAX_SIZE,
    max_voxels: int = MAX_VOXELS,
) -> go.Figure:
    """2D images side by side with one colour range, one colour bar and linked zoom.

    ``images`` maps panel titles to arrays (y, x) of one shape; ``zmin``/``zmax`` default to
    the range over all images; ``cols`` panels per row (default: one row of up to 4). One
    trace per image, all on ``coloraxis``. Other keywords: see the module doc.

    Example:
        >>> import numpy as np
        >>> from calcil import viz
        >>> fig = viz.compare({"truth": np.eye(8), "estimate": 0.5 * np.eye(8)})
        >>> len(fig.data), fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax
        (2, 0.0, 1.0)
    """
    if not isinstance(images, Mapping) or not images:
        raise ValueError(f"compare expects a non-empty dict {{name: 2D image}}, got {images!r}")
    _limits(max_size=max_size, max_voxels=max_voxels)
    arrays = {str(k): np.asarray(v) for k, v in images.items()}
    shape = next(iter(arrays.values())).shape
    bad = [f"{k!r} {v.shape}" for k, v in arrays.items() if v.ndim != 2 or v.shape != shape]
    if bad:
        raise ValueError(
            f"compare expects 2D images (y, x) of one shape; got {', '.join(bad)} against "
            f"{shape} of the first. Slice volumes first (vol[k]) or resample to one shape."
        )
    n = len(arrays)
    cols = min(n, 4) if cols is None else cols
    _limits(cols=cols)
    rows, d = math.ceil(n / cols), _spacing(dx, "yx", "compare")
    s = _strides(shape, (max_size, max_size), max_voxels, lambda c: n * math.prod(c))
    shown = {k: _part(v[:: s[0], :: s[1]], part, "compare") for k, v in arrays.items()}
    lo, hi = _range([v for v, _ in shown.values()], zmin, zmax)
    fig = _figure(
        rows=rows,
        cols=cols,
        subplot_titles=list(shown),
        horizontal_spacing=0.06,
        vertical_spacing=0.12,
    )
    x, y = _coords(shape[1], s[1], d[1]), _coords(shape[0], s[0], d[0])
    for k, (name, (img, _)) in enumerate(shown.items()):
        r, c = divmod(k, cols)
        fig.add_trace(_heatmap(img, x, y, name=name), r + 1, c + 1)
        xtitle = _label("x", d[1], unit) if k + cols >= n else None  # bottom of each column
        ytitle = _label("y", d[0], unit) if c == 0 else None
        _image_axes(fig, r + 1, c + 1, xtitle, ytitle, matches=True)
    fig.update_layout(
        title=_title(title, "comparison", next(iter(shown.values()))[1], {}, s),
        coloraxis=_coloraxis(lo, hi, colorscale),
        height=max(450, 350 * rows + 100),
    )
    return fig


def _scalars(source) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{key: (steps, values)}`` from a history dict, a Result or a TensorBoard log dir."""
    if isinstance(source, (str, Path)):
        from calcil.logs import read_scalars

        return read_scalars(source)
    source = getattr(source, "history", source)
    if not isinstance(source, Mapping):
        raise TypeError(
            "history expects result.history (a dict of arrays), a Result or the path of a "
            f"TensorBoard log directory, got {type(source).__name__}"
        )
    series = {k: np.asarray(v, dtype=float).ravel() for k, v in source.items()}
    steps = series.pop("step", np.arange(max(map(len, series.values()), default=0)))
    return {k: (steps[: len(v)], v) for k, v in series.items()}


def history(source, keys=None, *, title: str | None = None, log_y: bool = True) -> go.Figure:
    """Loss curves: each loss and prior term against the step, on a log axis.

    Args:
        source: ``result.history`` (a dict of arrays with ``"step"``), a ``Result``, or the
            path of a TensorBoard log directory written by a solver (read back with
            :func:`calcil.logs.read_scalars`).
        keys: the series to plot, one line each named by its key (default:
            ``"loss/total"``, then every ``"loss/*"`` and ``"prior/*"``); any scalar works,
            e.g. ``"lr/x"``.
        title: figure title.
        log_y: logarithmic y axis. Zeros (a prior at a zero start) are then left out; a
            negative value makes the axis linear. The title says which. Non-finite values
            (NaN between log points) are skipped.

    Example:
        >>> import numpy as np
        >>> from calcil import viz
        >>> h = {"step": np.arange(3), "loss/total": np.array([3.0, 2.0, 1.0]),
        ...      "loss/l2": np.array([2.5, 1.6, 0.8]), "prior/x/tv": np.array([0.5, 0.4, 0.2])}
        >>> fig = viz.history(h)
        >>> [t.name for t in fig.data], fig.layout.yaxis.type
        (['loss/total', 'loss/l2', 'prior/x/tv'], 'log')
    """
    table = _scalars(source)
    if keys is None:
        keys = [k for k in table if k == "loss/total"]
        keys += sorted(k for k in table if k.startswith(("loss/", "prior/")) and k not in keys)
        if not keys:
            raise ValueError(
                f"history: no loss/* or prior/* series in {sorted(table)}; choose "
                "some with keys=[...]"
            )
    else:
        keys = [keys] if isinstance(keys, str) else list(keys)
        missing = [k for k in keys if k not in table]
        if missing:
            raise ValueError(f"history: no series {missing}; available: {sorted(table)}")
    series = {k: (table[k][0], table[k][1], np.isfinite(table[k][1])) for k in keys}
    negative = any(np.any(v[ok] < 0) for _, v, ok in series.values())
    log = log_y and not negative
    zeros = log and any(np.any(v[ok] == 0) for _, v, ok in series.values())
    import plotly.graph_objects as go

    fig = go.Figure()
    for key, (steps, values, ok) in series.items():
        ok = ok & (values > 0) if log else ok
        line = dict(width=3 if key == "loss/total" else 1.5)
        fig.add_trace(go.Scatter(x=steps[ok], y=values[ok], mode="lines", name=key, line=line))
    note = "linear axis: negative values" if log_y and negative else ""
    note = "zeros not shown" if zeros else note
    fig.update_layout(
        title=_title(title, "loss history", note, {}, ()),
        xaxis_title="step",
        yaxis=dict(title="value", type="log" if log else "linear"),
        hovermode="x unified",
    )
    return fig
