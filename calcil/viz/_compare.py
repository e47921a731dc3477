"""Side-by-side comparison of 2D images on one colour range (:func:`compare`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from calcil.viz._style import Display, figure, heatmap, image_axes, positive, viewer

if TYPE_CHECKING:
    import plotly.graph_objects as go


@viewer(without=("max_slices",))
def compare(
    images: Mapping[str, object], *, cols: int | None = None, display: Display
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
    positive("cols", cols)
    rows = math.ceil(n / cols)
    s = display.strides(shape, cost=lambda c: n * math.prod(c))
    shown = {k: display.shown(v[:: s[0], :: s[1]]) for k, v in arrays.items()}
    fig = figure(
        rows=rows,
        cols=cols,
        subplot_titles=list(shown),
        horizontal_spacing=0.06,
        vertical_spacing=0.12,
    )
    (y, ytitle), (x, xtitle) = display.axes("yx", shape, s, display.spacing("yx"))
    for k, (name, (img, _)) in enumerate(shown.items()):
        r, c = divmod(k, cols)
        fig.add_trace(heatmap(img, x, y, name=name), r + 1, c + 1)
        bottom, left = k + cols >= n, c == 0  # axis titles at the bottom and on the left
        image_axes(fig, r + 1, c + 1, xtitle if bottom else None, ytitle if left else None, True)
    fig.update_layout(
        title=display.heading("comparison", next(iter(shown.values()))[1], pixels=s),
        coloraxis=display.coloraxis([v for v, _ in shown.values()]),
        height=max(450, 350 * rows + 100),
    )
    return fig
