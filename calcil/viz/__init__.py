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

Keyword arguments shared by the image viewers (each viewer's signature lists those it takes):

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

from calcil.viz._compare import compare
from calcil.viz._complex import complex_image
from calcil.viz._history import history
from calcil.viz._style import MAX_SIZE, MAX_SLICES, MAX_VOXELS  # noqa: F401 (default limits)
from calcil.viz._volumes import orthoslices, slices, volume4d

__all__ = ["compare", "complex_image", "history", "orthoslices", "slices", "volume4d"]
