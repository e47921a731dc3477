"""Complex fields: amplitude beside phase (:func:`complex_image`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from calcil.viz._style import Display, coloraxis, figure, heatmap, image_axes, viewer

if TYPE_CHECKING:
    import plotly.graph_objects as go

_PHASE_TICKS = dict(
    tickvals=[-np.pi, -np.pi / 2, 0, np.pi / 2, np.pi], ticktext=["−π", "−π/2", "0", "π/2", "π"]
)


@viewer(without=("part", "max_slices", "max_voxels"))
def complex_image(u, *, phase_colorscale="twilight", display: Display) -> go.Figure:
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
    a = display.array(u, 2, "y, x", "For volumes use slices(..., part='phase').")
    d = display.spacing("yx")
    s = display.strides(a.shape)
    shown = a[:: s[0], :: s[1]]
    amplitude, phase = np.abs(shown).astype(np.float32), np.angle(shown).astype(np.float32)
    fig = figure(
        rows=1, cols=2, horizontal_spacing=0.16, subplot_titles=("amplitude", "phase (rad)")
    )
    (y, ytitle), (x, xtitle) = display.axes("yx", a.shape, s, d)
    fig.add_trace(heatmap(amplitude, x, y, name="amplitude"), 1, 1)
    fig.add_trace(heatmap(phase, x, y, coloraxis="coloraxis2", name="phase"), 1, 2)
    for col in (1, 2):
        image_axes(fig, 1, col, xtitle, ytitle, matches=True)
    fig.update_layout(
        title=display.heading("complex field", pixels=s),
        coloraxis=display.coloraxis([amplitude], x=fig.layout.xaxis.domain[1] + 0.01),
        coloraxis2=coloraxis(-np.pi, np.pi, phase_colorscale, **_PHASE_TICKS),
    )
    return fig
