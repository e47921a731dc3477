"""Loss curves from a solver's history or its TensorBoard logs (:func:`history`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from calcil.viz._style import Display

if TYPE_CHECKING:
    import plotly.graph_objects as go


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
        title=Display("history", title=title).heading("loss history", note),
        xaxis_title="step",
        yaxis=dict(title="value", type="log" if log else "linear"),
        hovermode="x unified",
    )
    return fig
