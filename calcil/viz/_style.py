"""What the viewers share: their display keywords (:class:`Display`, given to each viewer by
:func:`viewer`) and the pieces of plotly figures they are made of.

plotly is imported on first use only, so ``import calcil`` stays light.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import inspect
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from calcil._internal.integers import as_count

if TYPE_CHECKING:
    import plotly.graph_objects as go

MAX_SLICES = 64
MAX_SIZE = 512
MAX_VOXELS = 2**23

_PARTS = {"abs": np.abs, "phase": np.angle, "real": np.real, "imag": np.imag}
_PART_NAMES = {"abs": "amplitude", "phase": "phase", "real": "real part", "imag": "imaginary part"}


def positive(name: str, value) -> None:
    """``value`` must be a whole number >= 1 (a ``ValueError`` naming ``name`` otherwise)."""
    as_count(name, value, 1, "a positive integer")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclasses.dataclass(frozen=True)
class Display:
    """The keywords the viewers share (see the doc of :mod:`calcil.viz`), checked, and what
    follows from them: strides, the part shown, axis labels, the colour range and the title.
    ``viewer`` names the viewer in messages.
    """

    viewer: str
    dx: object = None
    unit: str = "µm"
    title: str | None = None
    colorscale: object = "gray"
    zmin: float | None = None
    zmax: float | None = None
    part: str | None = None
    max_slices: int = MAX_SLICES
    max_size: int = MAX_SIZE
    max_voxels: int = MAX_VOXELS

    def __post_init__(self):
        for name in ("max_slices", "max_size", "max_voxels"):
            positive(name, getattr(self, name))
        if self.part is not None and self.part not in _PARTS:
            raise ValueError(
                f"{self.viewer}: part must be one of {sorted(_PARTS)} or None, got {self.part!r}"
            )

    def array(self, a, ndim: int, axes: str, hint: str) -> np.ndarray:
        a = np.asarray(a)
        if a.ndim != ndim:
            raise ValueError(
                f"{self.viewer} expects a {ndim}D array ({axes}), got shape {a.shape}. {hint}"
            )
        return a

    def spacing(self, axes: str) -> tuple:
        """One pixel size per axis (all ``None`` without ``dx``)."""
        if self.dx is None:
            return (None,) * len(axes)
        d = np.atleast_1d(np.asarray(self.dx, dtype=float))
        if d.ndim != 1 or len(d) not in (1, len(axes)) or not np.all(d > 0):
            raise ValueError(
                f"{self.viewer}: dx must be a positive number or {len(axes)} of them (one per "
                f"axis {', '.join(axes)}), got {self.dx!r}"
            )
        return tuple(float(v) for v in np.broadcast_to(d, (len(axes),)))

    def strides(self, sizes, sliders: int = 0, cost=math.prod) -> list[int]:
        """Strides for axes of ``sizes``: the first ``sliders`` are slider axes (at most
        ``max_slices`` steps), the others image axes (``max_size`` pixels); and the values
        carried, ``cost(counts)``, within ``max_voxels``: the axis with the most samples is
        thinned first."""
        limits = [self.max_slices] * sliders + [self.max_size] * (len(sizes) - sliders)
        strides = [max(1, math.ceil(n / lim)) for n, lim in zip(sizes, limits, strict=True)]
        while True:
            counts = [math.ceil(n / s) for n, s in zip(sizes, strides, strict=True)]
            if cost(counts) <= self.max_voxels or max(counts) <= 1:
                return strides
            strides[counts.index(max(counts))] += 1

    def shown(self, a: np.ndarray) -> tuple[np.ndarray, str]:
        """The real float32 array to display (``part`` of complex data) and a note for the
        title."""
        part = self.part
        if part is None:
            if not np.iscomplexobj(a):
                return np.asarray(a, np.float32), ""
            part = "abs"
        return np.asarray(_PARTS[part](a), np.float32), _PART_NAMES[part]

    def axes(self, names, sizes, strides, spacing) -> list[tuple[np.ndarray, str]]:
        """Per axis: the positions of the shown samples (pixel indices of the original array,
        or physical with a pixel size) and the axis title."""
        out = []
        for name, n, stride, d in zip(names, sizes, strides, spacing, strict=True):
            title = f"{name} ({self.unit})" if d is not None else f"{name} (pixel)"
            out.append((np.arange(0, n, stride) * (1.0 if d is None else d), title))
        return out

    def value(self, index: int, d) -> str:
        """A slider label: the index, or the position with a pixel size ``d``."""
        return str(index) if d is None else f"{index * d:.4g} {self.unit}".rstrip()

    def heading(self, default: str, what="", steps: Mapping[str, int] | None = None, pixels=()):
        """Layout title: ``title`` (or ``default``), the part shown and the striding, if any."""
        notes = [what] if what else []
        notes += [f"every {_ordinal(s)} {name}" for name, s in (steps or {}).items() if s > 1]
        if any(s > 1 for s in pixels):
            same = len(set(pixels)) == 1
            res = f"1/{pixels[0]}" if same else " × ".join(f"1/{s}" for s in pixels)
            notes.append(f"shown at {res} resolution")
        text = self.title if self.title is not None else default
        text += f" ({', '.join(notes)})" if notes else ""
        return dict(text=text.strip(), x=0.5, xanchor="center")

    def coloraxis(self, arrays, **colorbar) -> dict:
        """One colour range for all ``arrays`` (``zmin``/``zmax``, by default that of their
        finite values) in ``colorscale``."""
        lo = hi = None
        if self.zmin is None or self.zmax is None:
            finite = np.concatenate([a[np.isfinite(a)] for a in arrays])
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            lo, hi = (lo - 0.5, hi + 0.5) if hi <= lo else (lo, hi)
        lo = lo if self.zmin is None else float(self.zmin)
        hi = hi if self.zmax is None else float(self.zmax)
        if not lo < hi:
            raise ValueError(f"zmin must be below zmax, got zmin={lo} and zmax={hi}")
        return coloraxis(lo, hi, self.colorscale, **colorbar)


def viewer(*, without: tuple[str, ...] = ()):
    """Give a viewer the keywords of :class:`Display` (all but ``without``).

    The decorated function takes its own arguments and ``display``, a :class:`Display`; the
    function users call has its own arguments plus the display keywords, keyword-only with
    the defaults of :class:`Display` (as its signature shows).
    """
    shared = [f for f in dataclasses.fields(Display)[1:] if f.name not in without]
    kw = inspect.Parameter.KEYWORD_ONLY

    def wrap(fn):
        own = [p for p in inspect.signature(fn).parameters.values() if p.name != "display"]
        more = [inspect.Parameter(f.name, kw, default=f.default, annotation=f.type) for f in shared]
        signature = inspect.signature(fn).replace(parameters=own + more)

        @functools.wraps(fn)
        def call(*args, **kwargs):
            try:
                arguments = signature.bind(*args, **kwargs).arguments
            except TypeError as err:
                raise TypeError(f"{fn.__name__}() {err}") from None
            options = {f.name: arguments.pop(f.name) for f in shared if f.name in arguments}
            return fn(**arguments, display=Display(fn.__name__, **options))

        call.__signature__ = signature
        return call

    return wrap


# ------------------------------------------------------------------------- figure pieces
def figure(rows=1, cols=1, **kw) -> go.Figure:
    """A figure with subplots."""
    from plotly.subplots import make_subplots

    return make_subplots(rows=rows, cols=cols, **kw)


def heatmap(z, x, y, coloraxis="coloraxis", **kw) -> go.Heatmap:
    import plotly.graph_objects as go

    return go.Heatmap(z=np.asarray(z, np.float32), x=x, y=y, coloraxis=coloraxis, **kw)


def coloraxis(lo, hi, colorscale, **colorbar) -> dict:
    return dict(cmin=lo, cmax=hi, colorscale=colorscale, colorbar=colorbar)


def image_axes(fig, row, col, xtitle, ytitle, matches=False) -> None:
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


def typed(a: np.ndarray) -> dict:
    """A 2D slice as a plotly.js typed-array spec (base64 float32), for slider steps."""
    a = np.ascontiguousarray(a, dtype="<f4")
    data = base64.b64encode(a.tobytes()).decode("ascii")
    return {"dtype": "f4", "bdata": data, "shape": ", ".join(map(str, a.shape))}


def step(label: str, data: dict, traces: list, layout: dict | None = None) -> dict:
    """A slider step that restyles ``traces`` with ``data`` (and relayouts ``layout``).

    It also sets the traces' ``meta`` to its label. A slider whose steps set a single
    attribute is bound by plotly.js to that attribute's value, which turns the whole slice
    into a lookup key on every redraw; a second attribute switches that binding off.
    """
    data = {**data, "meta": [label] * len(traces)}
    if layout is None:
        return dict(method="restyle", label=label, args=[data, traces])
    return dict(method="update", label=label, args=[data, layout, traces])


def slider(steps, active, prefix, x=0.0, length=1.0) -> dict:
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
