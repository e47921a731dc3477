"""Volumes: one slice at a time (:func:`slices`), three orthogonal planes (:func:`orthoslices`)
and volumes over time (:func:`volume4d`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from calcil.viz._style import (
    Display,
    figure,
    heatmap,
    image_axes,
    slider,
    step,
    typed,
    viewer,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

_AXES = "zyx"
_CROSSHAIR = dict(color="rgba(255,64,64,0.7)", width=1)
_HINT_3D = "For 4D (t, z, y, x) data use volume4d."


@viewer()
def slices(vol, axis: int = 0, *, display: Display) -> go.Figure:
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
    a = display.array(vol, 3, "z, y, x", _HINT_3D)
    if not isinstance(axis, int) or not -3 <= axis < 3:
        raise ValueError(f"slices: axis must be 0, 1 or 2 (or -3..-1), got {axis!r}")
    axis %= 3
    order = [axis] + [i for i in range(3) if i != axis]
    names = [_AXES[i] for i in order]
    d = [display.spacing(_AXES)[i] for i in order]
    a = np.moveaxis(a, axis, 0)
    s = display.strides(a.shape, sliders=1)
    shown, what = display.shown(a[:: s[0], :: s[1], :: s[2]])
    active = len(shown) // 2
    _, (y, ytitle), (x, xtitle) = display.axes(names, a.shape, s, d)
    fig = figure()
    fig.add_trace(heatmap(shown[active], x, y))
    image_axes(fig, 1, 1, xtitle, ytitle)
    steps = [
        step(display.value(i, d[0]), {"z": [typed(plane)]}, [0])
        for i, plane in zip(range(0, a.shape[0], s[0]), shown, strict=True)
    ]
    fig.update_layout(
        title=display.heading(f"slices along {names[0]}", what, {"slice": s[0]}, s[1:]),
        coloraxis=display.coloraxis([shown]),
        sliders=[slider(steps, active, f"{names[0]} = ")],
    )
    return fig


@viewer()
def orthoslices(vol, *, position=None, crosshair: bool = True, display: Display) -> go.Figure:
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
    a = display.array(vol, 3, "z, y, x", _HINT_3D)
    d, n = display.spacing(_AXES), a.shape
    point = [k // 2 for k in n] if position is None else list(position)
    if len(point) != 3 or not all(0 <= int(p) < k for p, k in zip(point, n, strict=True)):
        raise ValueError(f"orthoslices: position must be (z, y, x) within {n}, got {position!r}")

    def cost(c):  # slider steps carry planes: cz*py*px + cy*pz*px + cx*pz*py
        return c[0] * c[4] * c[5] + c[1] * c[3] * c[5] + c[2] * c[3] * c[4]

    s = display.strides(n + n, sliders=3, cost=cost)
    q, p = s[:3], s[3:]  # slider strides, pixel strides
    stacks = [  # the planes each slider steps through: (step, rows, columns)
        display.shown(a[:: q[0], :: p[1], :: p[2]])[0],
        display.shown(a[:: p[0], :: q[1], :: p[2]])[0].transpose(1, 0, 2),
        display.shown(a[:: p[0], :: p[1], :: q[2]])[0].transpose(2, 0, 1),
    ]
    what = display.shown(a[:1, :1, :1])[1]
    index = [np.arange(0, k, st) for k, st in zip(n, q, strict=True)]
    active = [int(np.abs(ix - int(c)).argmin()) for ix, c in zip(index, point, strict=True)]
    co, titles = zip(*display.axes(_AXES, n, p, d), strict=True)  # pixels: z, y, x
    at = [ix * (1.0 if dk is None else dk) for ix, dk in zip(index, d, strict=True)]  # steps
    panels = [(2, 1), (2, 0), (1, 0)]  # (column axis, row axis) of each panel
    widths = [np.ptp(co[c]) + (co[c][1] - co[c][0] if len(co[c]) > 1 else 1) for c, _ in panels]
    fig = figure(
        rows=1,
        cols=3,
        column_widths=[w / sum(widths) for w in widths],
        horizontal_spacing=0.08,
        subplot_titles=("y–x plane", "z–x plane", "z–y plane"),
    )
    for k, (c, r) in enumerate(panels):
        fig.add_trace(heatmap(stacks[k][active[k]], co[c], co[r]), 1, k + 1)
        image_axes(fig, 1, k + 1, titles[c], titles[r])
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
            step(
                display.value(int(i), d[ax]),
                {"z": [typed(plane)]},
                [ax],
                {f"shapes[{j}].{c}{e}": v for j, c in moved for e in (0, 1)},
            )
            for i, v, plane in zip(index[ax], at[ax], stacks[ax], strict=True)
        ]
        dom = fig.get_subplot(1, ax + 1).xaxis.domain
        sliders.append(slider(steps, active[ax], f"{_AXES[ax]} = ", dom[0], dom[1] - dom[0]))
    strided = {f"{c} slice": st for c, st in zip(_AXES, q, strict=True)}
    fig.update_layout(
        title=display.heading("orthogonal slices", what, strided, p),
        coloraxis=display.coloraxis(stacks),
        shapes=shapes,
        sliders=sliders,
    )
    return fig


@viewer()
def volume4d(vol_tzyx, *, dt=None, t_unit: str = "", display: Display) -> go.Figure:
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
    a = display.array(vol_tzyx, 4, "t, z, y, x", "For one volume use slices/orthoslices.")
    d = display.spacing(_AXES)
    s = display.strides(a.shape, sliders=2)
    shown, what = display.shown(a[:: s[0], :: s[1], :: s[2], :: s[3]])
    traces = list(range(shown.shape[1]))
    z0 = len(traces) // 2
    _, (y, ytitle), (x, xtitle) = display.axes(_AXES, a.shape[1:], s[1:], d)
    fig = figure()
    for k in traces:
        fig.add_trace(heatmap(shown[0, k], x, y, visible=k == z0, name=f"z slice {k}"))
    image_axes(fig, 1, 1, xtitle, ytitle)
    t_steps = [
        step(
            str(i) if dt is None else f"{i * dt:.4g} {t_unit}".rstrip(),
            {"z": [typed(plane) for plane in stack]},
            traces,
        )
        for i, stack in zip(range(0, a.shape[0], s[0]), shown, strict=True)
    ]
    z_steps = [
        step(display.value(i, d[0]), {"visible": [k == j for k in traces]}, traces)
        for j, i in enumerate(range(0, a.shape[1], s[1]))
    ]
    strided = {"time point": s[0], "z slice": s[1]}
    fig.update_layout(
        title=display.heading("volume over time", what, strided, s[2:]),
        coloraxis=display.coloraxis([shown]),
        sliders=[slider(t_steps, 0, "t = ", 0.0, 0.47), slider(z_steps, z0, "z = ", 0.53, 0.47)],
    )
    return fig
