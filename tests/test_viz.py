"""calcil.viz: the structure of each figure (traces, slider steps and the data they carry,
colour ranges, linked axes, cyclic phase scale, log axes), striding, units, offline HTML,
errors."""

import base64
import inspect
import re
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import optax
import plotly.graph_objects as go
import pytest

import calcil as cc
from calcil import viz
from calcil.logs import read_scalars

RNG = np.random.default_rng(0)


def volume(*shape):
    """Each slice along the first axis is distinguishable: slice k holds values in [k, k+1)."""
    k = np.arange(shape[0]).reshape((-1,) + (1,) * (len(shape) - 1))
    return (k + RNG.random(shape)).astype(np.float32)


def decode(spec):
    """The array a slider step carries (a plotly.js typed-array spec)."""
    shape = tuple(int(v) for v in spec["shape"].split(","))
    return np.frombuffer(base64.b64decode(spec["bdata"]), dtype=spec["dtype"]).reshape(shape)


def step_z(step, trace=0):
    """The z data that ``step`` gives to the ``trace``-th trace it restyles."""
    return decode(step.args[0]["z"][trace])


# ----------------------------------------------------------------------------------- slices
def test_slices_one_heatmap_and_a_step_per_slice_carrying_that_slice():
    vol = volume(7, 12, 16)
    fig = viz.slices(vol)
    assert isinstance(fig, go.Figure) and len(fig.data) == 1 and fig.frames == ()
    (slider,) = fig.layout.sliders
    assert len(slider.steps) == 7
    for k, step in enumerate(slider.steps):
        assert step.method == "restyle" and step.args[1] == (0,) and step.label == str(k)
        np.testing.assert_array_equal(step_z(step), vol[k])
    assert slider.active == 3  # opens at the central slice, which the trace shows
    np.testing.assert_array_equal(fig.data[0].z, vol[3])
    # one colour range for every slice, from the data
    assert fig.data[0].coloraxis == "coloraxis"
    assert fig.layout.coloraxis.cmin == pytest.approx(vol.min())
    assert fig.layout.coloraxis.cmax == pytest.approx(vol.max())
    assert fig.layout.coloraxis.colorscale[0][1] == "rgb(0, 0, 0)"  # gray
    # equal aspect, first row on top
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.autorange == "reversed"


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_slices_along_another_axis(axis):
    vol = volume(4, 5, 6)
    fig = viz.slices(jnp.asarray(vol), axis=axis)  # JAX arrays are accepted
    steps = fig.layout.sliders[0].steps
    assert len(steps) == vol.shape[axis]
    for k, step in enumerate(steps):
        np.testing.assert_array_equal(step_z(step), np.take(vol, k, axis=axis))
    names = {1: ("y", "z", "x"), 2: ("x", "z", "y")}[axis % 3]
    assert fig.layout.sliders[0].currentvalue.prefix == f"{names[0]} = "
    assert fig.layout.yaxis.title.text == f"{names[1]} (pixel)"
    assert fig.layout.xaxis.title.text == f"{names[2]} (pixel)"


def test_physical_axes_with_dx():
    vol = volume(4, 5, 6)
    fig = viz.slices(vol, dx=(2.0, 0.5, 0.25), unit="nm")
    np.testing.assert_allclose(fig.data[0].x, np.arange(6) * 0.25)
    np.testing.assert_allclose(fig.data[0].y, np.arange(5) * 0.5)
    assert fig.layout.xaxis.title.text == "x (nm)" and fig.layout.yaxis.title.text == "y (nm)"
    assert [s.label for s in fig.layout.sliders[0].steps] == ["0 nm", "2 nm", "4 nm", "6 nm"]
    fig = viz.slices(vol, dx=0.5)  # one number: isotropic
    np.testing.assert_allclose(fig.data[0].x, np.arange(6) * 0.5)
    assert fig.layout.xaxis.title.text == "x (µm)"


def test_large_volumes_are_strided_and_the_title_says_so():
    vol = volume(130, 20, 20)  # more slices than max_slices=64: every 3rd
    fig = viz.slices(vol)
    steps = fig.layout.sliders[0].steps
    assert len(steps) == 44 and "every 3rd slice" in fig.layout.title.text
    np.testing.assert_array_equal(step_z(steps[5]), vol[15])
    assert [s.label for s in steps[:3]] == ["0", "3", "6"]

    fig = viz.slices(volume(10, 20, 20), max_slices=4, max_size=8, title="beads")
    assert fig.layout.title.text == "beads (every 3rd slice, shown at 1/3 resolution)"
    assert len(fig.layout.sliders[0].steps) == 4 and fig.data[0].z.shape == (7, 7)
    np.testing.assert_array_equal(fig.data[0].x, np.arange(0, 20, 3))  # original pixel indices

    # a voxel budget thins the largest axes first
    fig = viz.slices(np.zeros((4, 100, 60)), max_voxels=4 * 50 * 60)
    assert fig.data[0].z.shape == (50, 60) and len(fig.layout.sliders[0].steps) == 4
    assert "shown at 1/2 × 1/1 resolution" in fig.layout.title.text
    assert "(" not in viz.slices(volume(3, 4, 4)).layout.title.text  # nothing strided


def test_complex_volumes_show_a_part_named_in_the_title():
    vol = volume(3, 4, 5) * np.exp(1j * RNG.random((3, 4, 5)))
    fig = viz.slices(vol)
    assert "amplitude" in fig.layout.title.text
    np.testing.assert_allclose(step_z(fig.layout.sliders[0].steps[2]), np.abs(vol[2]), rtol=1e-6)
    fig = viz.slices(vol, part="phase")
    assert "phase" in fig.layout.title.text
    np.testing.assert_allclose(step_z(fig.layout.sliders[0].steps[0]), np.angle(vol[0]), 1e-6)


# ------------------------------------------------------------------------------ orthoslices
def test_orthoslices_three_planes_with_their_own_sliders():
    vol = volume(6, 8, 10)
    fig = viz.orthoslices(vol, dx=(2.0, 1.0, 1.0))
    assert len(fig.data) == 3 and [len(s.steps) for s in fig.layout.sliders] == [6, 8, 10]
    np.testing.assert_array_equal(fig.data[0].z, vol[3])
    np.testing.assert_array_equal(fig.data[1].z, vol[:, 4, :])
    np.testing.assert_array_equal(fig.data[2].z, vol[:, :, 5])
    z_slider, y_slider, x_slider = fig.layout.sliders
    for ax, slider, plane in [
        (0, z_slider, lambda k: vol[k]),
        (1, y_slider, lambda k: vol[:, k, :]),
        (2, x_slider, lambda k: vol[:, :, k]),
    ]:
        assert slider.active == vol.shape[ax] // 2
        for k, step in enumerate(slider.steps):
            assert step.method == "update" and step.args[2] == (ax,)
            np.testing.assert_array_equal(step_z(step), plane(k))
    # one colour range over the three panels; physical z in the z-x and z-y panels
    assert {t.coloraxis for t in fig.data} == {"coloraxis"}
    np.testing.assert_allclose(fig.data[1].y, np.arange(6) * 2.0)
    # crosshair: the z slider moves the horizontal lines of the z-x and z-y panels
    shapes = fig.layout.shapes
    assert len(shapes) == 6 and shapes[2].y0 == shapes[2].y1 == 6.0  # z = 3 at dz = 2
    moves = z_slider.steps[1].args[1]
    assert moves == {f"shapes[{i}].{e}": 2.0 for i in (2, 4) for e in ("y0", "y1")}


def test_orthoslices_position_and_striding():
    vol = volume(6, 8, 10)
    fig = viz.orthoslices(vol, position=(1, 2, 3))
    assert [s.active for s in fig.layout.sliders] == [1, 2, 3]
    np.testing.assert_array_equal(fig.data[2].z, vol[:, :, 3])
    fig = viz.orthoslices(vol, max_slices=4)
    assert [len(s.steps) for s in fig.layout.sliders] == [3, 4, 4]
    assert "every 2nd z slice" in fig.layout.title.text
    assert "every 3rd x slice" in fig.layout.title.text
    with pytest.raises(ValueError, match=r"position must be \(z, y, x\) within \(6, 8, 10\)"):
        viz.orthoslices(vol, position=(6, 0, 0))


# --------------------------------------------------------------------------------- volume4d
def test_volume4d_independent_time_and_depth_sliders():
    vol = np.stack([volume(5, 6, 7) + 10 * t for t in range(4)])  # (t, z, y, x)
    fig = viz.volume4d(vol, dt=0.5, t_unit="s")
    assert len(fig.data) == 5  # one heatmap per z slice
    assert [t.visible for t in fig.data] == [False, False, True, False, False]
    for k, trace in enumerate(fig.data):
        np.testing.assert_array_equal(trace.z, vol[0, k])
    t_slider, z_slider = fig.layout.sliders
    assert (len(t_slider.steps), len(z_slider.steps)) == (4, 5)
    assert (t_slider.active, z_slider.active) == (0, 2)
    assert [s.label for s in t_slider.steps] == ["0 s", "0.5 s", "1 s", "1.5 s"]
    for t, step in enumerate(t_slider.steps):  # new data for every z trace, visibility kept
        assert step.args[1] == (0, 1, 2, 3, 4) and "visible" not in step.args[0]
        for k in range(5):
            np.testing.assert_array_equal(step_z(step, k), vol[t, k])
    for j, step in enumerate(z_slider.steps):  # shows one z trace, data kept
        assert step.args[1] == (0, 1, 2, 3, 4) and "z" not in step.args[0]
        assert step.args[0]["visible"] == [k == j for k in range(5)]
    assert fig.layout.coloraxis.cmax == pytest.approx(vol.max())


def test_volume4d_striding():
    fig = viz.volume4d(np.zeros((10, 8, 16, 16)), max_slices=5, max_size=8)
    t_slider, z_slider = fig.layout.sliders
    assert (len(t_slider.steps), len(z_slider.steps), len(fig.data)) == (5, 4, 4)
    assert fig.data[0].z.shape == (8, 8)
    assert fig.layout.title.text == (
        "volume over time (every 2nd time point, every 2nd z slice, shown at 1/2 resolution)"
    )


# ---------------------------------------------------------------------------- complex_image
@pytest.mark.parametrize("scale", ["twilight", "phase"])
def test_complex_image_amplitude_and_cyclic_phase(scale):
    u = RNG.random((6, 9)) * np.exp(1j * RNG.uniform(-np.pi, np.pi, (6, 9)))
    fig = viz.complex_image(jnp.asarray(u, jnp.complex64), dx=0.1, phase_colorscale=scale)
    amplitude, phase = fig.data
    np.testing.assert_allclose(amplitude.z, np.abs(u), rtol=1e-6)
    np.testing.assert_allclose(phase.z, np.angle(u), atol=1e-6)
    assert (amplitude.coloraxis, phase.coloraxis) == ("coloraxis", "coloraxis2")
    assert fig.layout.coloraxis.colorscale[0][1] == "rgb(0, 0, 0)"  # gray amplitude
    colours = fig.layout.coloraxis2.colorscale
    assert colours[0][1] == colours[-1][1]  # cyclic: -pi and pi look the same
    assert (fig.layout.coloraxis2.cmin, fig.layout.coloraxis2.cmax) == (-np.pi, np.pi)
    assert fig.layout.xaxis2.matches == "x" and fig.layout.yaxis2.matches == "y"
    np.testing.assert_allclose(amplitude.x, np.arange(9) * 0.1)


# ---------------------------------------------------------------------------------- compare
def test_compare_shares_the_colour_range_and_links_zoom():
    images = {"truth": RNG.random((5, 7)), "noisy": 3 * RNG.random((5, 7)) - 1, "x": np.eye(5, 7)}
    fig = viz.compare(images)
    assert [t.name for t in fig.data] == ["truth", "noisy", "x"]
    assert {t.coloraxis for t in fig.data} == {"coloraxis"}  # one colour bar
    everything = np.stack(list(images.values()))
    assert fig.layout.coloraxis.cmin == pytest.approx(everything.min())
    assert fig.layout.coloraxis.cmax == pytest.approx(everything.max())
    for i in (2, 3):
        assert fig.layout[f"xaxis{i}"].matches == "x" and fig.layout[f"yaxis{i}"].matches == "y"
        assert fig.layout[f"yaxis{i}"].scaleanchor == f"x{i}"
    assert [a.text for a in fig.layout.annotations] == ["truth", "noisy", "x"]

    fig = viz.compare(images, zmin=0, zmax=1, cols=2)
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0, 1)
    assert fig.get_subplot(2, 1) is not None  # two rows


def test_compare_rejects_images_of_other_shapes_naming_them():
    with pytest.raises(ValueError, match=r"'b' \(4, 4\), 'c' \(2, 5, 5\) against \(5, 5\)"):
        viz.compare({"a": np.zeros((5, 5)), "b": np.zeros((4, 4)), "c": np.zeros((2, 5, 5))})
    with pytest.raises(ValueError, match="non-empty dict"):
        viz.compare({})


# ---------------------------------------------------------------------------------- history
def test_history_from_a_dict_log_axis_and_nan_skipped():
    h = {
        "step": np.arange(4),
        "loss/total": np.array([4.0, 3.0, 2.0, 1.0]),
        "loss/l2": np.array([3.0, 2.5, 1.5, 0.8]),
        "prior/x/tv": np.array([1.0, 0.5, 0.5, 0.2]),
        "grad_norm/x": np.array([np.nan, 2.0, np.nan, 1.0]),
    }
    fig = viz.history(h)
    assert [t.name for t in fig.data] == ["loss/total", "loss/l2", "prior/x/tv"]
    assert fig.layout.yaxis.type == "log" and fig.layout.xaxis.title.text == "step"
    np.testing.assert_array_equal(fig.data[1].y, h["loss/l2"])
    fig = viz.history(h, keys="grad_norm/x")  # NaN between log points are skipped
    np.testing.assert_array_equal(fig.data[0].x, [1, 3])
    np.testing.assert_array_equal(fig.data[0].y, [2.0, 1.0])
    # zeros (a prior at a zero start) are left out of a log axis; negative values: linear
    fig = viz.history({**h, "prior/x/tv": np.array([0.0, 0.5, 0.5, 0.2])})
    assert fig.layout.yaxis.type == "log" and "zeros not shown" in fig.layout.title.text
    np.testing.assert_array_equal(fig.data[2].x, [1, 2, 3])
    fig = viz.history({**h, "loss/l2": np.array([1.0, 0.0, -1.0, 1.0])})
    assert fig.layout.yaxis.type == "linear" and "negative values" in fig.layout.title.text
    assert len(fig.data[1].x) == 4
    with pytest.raises(ValueError, match=r"no series \['loss/kl'\]; available"):
        viz.history(h, keys=["loss/kl"])


def test_history_from_a_result_and_from_its_tensorboard_log_dir(tmp_path):
    obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"), priors={"x": 0.1 * cc.priors.L2()})
    result = cc.GradientSolver(obj, optimizer=optax.sgd(0.1)).run(
        {"x": jnp.zeros(3)},
        {"y": jnp.array([1.0, -2.0, 3.0])},
        iterations=12,
        log_dir=tmp_path,
        log_every=4,
        progress=False,
    )
    names = ["loss/total", "loss/l2", "prior/x/l2"]
    fig = viz.history(result)
    assert [t.name for t in fig.data] == names and fig.layout.yaxis.type == "log"
    np.testing.assert_allclose(fig.data[0].y, result.history["loss/total"])
    assert fig.data[2].x[0] == 1  # the prior is 0 at the zero start: not on a log axis

    fig = viz.history(tmp_path)  # the event files
    assert [t.name for t in fig.data] == names
    scalars = read_scalars(tmp_path)
    for trace in fig.data:
        steps, values = scalars[trace.name]
        keep = values > 0
        assert keep.sum() > 1
        np.testing.assert_array_equal(trace.x, steps[keep])
        np.testing.assert_allclose(trace.y, values[keep])
    assert [t.name for t in viz.history(str(tmp_path)).data] == names
    with pytest.raises(FileNotFoundError):
        viz.history(tmp_path / "nothing")
    with pytest.raises(TypeError, match=r"history expects result\.history"):
        viz.history(3.0)


# -------------------------------------------------------------------------- shared keywords
VIEWERS = {  # each viewer on small data, with the keywords given
    "slices": lambda **kw: viz.slices(volume(3, 4, 5), **kw),
    "orthoslices": lambda **kw: viz.orthoslices(volume(3, 4, 5), **kw),
    "volume4d": lambda **kw: viz.volume4d(volume(2, 3, 4, 5), **kw),
    "complex_image": lambda **kw: viz.complex_image(volume(4, 5) * np.exp(1j), **kw),
    "compare": lambda **kw: viz.compare({"a": volume(4, 5), "b": volume(4, 5) - 1}, **kw),
    "history": lambda **kw: viz.history({"step": np.arange(2), "loss/total": np.ones(2)}, **kw),
}
IMAGES = [name for name in VIEWERS if name != "history"]
DISPLAY = {  # the keywords the image viewers share, with their one default
    "dx": None,
    "unit": "µm",
    "title": None,
    "colorscale": "gray",
    "zmin": None,
    "zmax": None,
    "part": None,
    "max_slices": viz.MAX_SLICES,
    "max_size": viz.MAX_SIZE,
    "max_voxels": viz.MAX_VOXELS,
}
OWN = {  # each viewer's own arguments, and the shared keywords it goes without
    "slices": (["vol", "axis"], []),
    "orthoslices": (["vol", "position", "crosshair"], []),
    "volume4d": (["vol_tzyx", "dt", "t_unit"], []),
    "complex_image": (["u", "phase_colorscale"], ["part", "max_slices", "max_voxels"]),
    "compare": (["images", "cols"], ["max_slices"]),
}


@pytest.mark.parametrize("name", IMAGES)
def test_viewers_take_the_shared_keywords_with_the_same_defaults(name):
    own, without = OWN[name]
    params = inspect.signature(getattr(viz, name)).parameters
    shared = {k: v for k, v in DISPLAY.items() if k not in without}
    assert sorted(params) == sorted(own + list(shared))
    assert {k: params[k].default for k in shared} == shared
    assert all(params[k].kind is inspect.Parameter.KEYWORD_ONLY for k in shared)
    for key in [*without, "display", "colour"]:  # nothing else is taken
        with pytest.raises(TypeError, match=rf"{name}\(\) got an unexpected keyword .*{key}"):
            VIEWERS[name](**{key: None})


@pytest.mark.parametrize("name", VIEWERS)
def test_the_title_is_the_same_in_every_viewer(name):
    default = VIEWERS[name]().layout.title
    assert default.text and (default.x, default.xanchor) == (0.5, "center")
    assert VIEWERS[name](title="beads").layout.title.to_plotly_json() == {
        "text": "beads",
        "x": 0.5,
        "xanchor": "center",
    }


@pytest.mark.parametrize("name", IMAGES)
def test_colour_range_and_map_are_the_same_in_every_viewer(name):
    fig = VIEWERS[name](zmin=0.25, zmax=0.75, colorscale="viridis")
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0.25, 0.75)
    viridis = go.Layout(coloraxis_colorscale="viridis").coloraxis.colorscale
    assert fig.layout.coloraxis.colorscale == viridis
    images = [t for t in fig.data if t.name != "phase"]  # complex_image: phase on its own axis
    assert images and {t.coloraxis for t in images} == {"coloraxis"}
    with pytest.raises(ValueError, match="zmin must be below zmax"):
        VIEWERS[name](zmin=1, zmax=1)
    one_end = VIEWERS[name](zmax=1e3).layout.coloraxis  # the other from the data, in [0, 1)
    assert one_end.cmax == 1e3 and one_end.cmin < 1


@pytest.mark.parametrize("name", IMAGES)
def test_pixel_size_unit_and_size_limit_are_the_same_in_every_viewer(name):
    fig = VIEWERS[name](dx=0.5, unit="nm")  # the first panel shows x across, y down
    assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == ("x (nm)", "y (nm)")
    np.testing.assert_allclose(fig.data[0].x, 0.5 * np.arange(5))
    np.testing.assert_allclose(fig.data[0].y, 0.5 * np.arange(4))
    fig = VIEWERS[name](max_size=2)
    assert fig.data[0].z.shape == (2, 2) and "shown at 1/2 × " in fig.layout.title.text
    np.testing.assert_array_equal(fig.data[0].x, [0, 3])  # original pixel indices
    with pytest.raises(ValueError, match="max_size must be a positive integer"):
        VIEWERS[name](max_size=0)


@pytest.mark.parametrize("name", [n for n in IMAGES if n != "complex_image"])
def test_the_part_shown_is_the_same_in_every_viewer(name):
    fig = VIEWERS[name](part="imag")  # of real data: zeros, and the title says which part
    assert "(imaginary part)" in fig.layout.title.text
    assert all(not np.any(t.z) for t in fig.data)


# ------------------------------------------------------------------------- html and errors
def test_importing_viz_does_not_import_plotly():  # so that calcil can export it lightly
    code = "import sys, calcil.viz; print('plotly' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_write_html_is_self_contained(tmp_path):
    for name, make in VIEWERS.items():
        fig = make()
        path = tmp_path / f"{name}.html"
        fig.write_html(path, include_plotlyjs=True)
        html = path.read_text(encoding="utf-8")
        assert not re.search(r"<script[^>]*src=[\"']?https?://", html), name
        assert "Plotly.newPlot" in html and len(html) > 1_000_000, name  # plotly.js embedded


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: viz.slices(np.zeros((4, 4))), r"slices expects a 3D array \(z, y, x\), got"),
        (lambda: viz.orthoslices(np.zeros((2, 2, 2, 2))), r"orthoslices expects a 3D array"),
        (lambda: viz.volume4d(np.zeros((2, 2, 2))), r"volume4d expects a 4D array \(t, z, y, x\)"),
        (lambda: viz.complex_image(np.zeros(4)), r"complex_image expects a 2D array \(y, x\)"),
        (lambda: viz.slices(np.zeros((2, 2, 2)), axis=3), "axis must be 0, 1 or 2"),
        (lambda: viz.slices(np.zeros((2, 2, 2)), part="angle"), "part must be one of"),
        (lambda: viz.slices(np.zeros((2, 2, 2)), dx=(1, 2)), "dx must be a positive number or 3"),
        (lambda: viz.compare({"a": np.zeros((2, 2))}, dx=-1), "dx must be a positive number"),
        (lambda: viz.slices(np.zeros((2, 2, 2)), zmin=1, zmax=0), "zmin must be below zmax"),
        (lambda: viz.slices(np.zeros((2, 2, 2)), max_slices=0), "max_slices must be a positive"),
        (lambda: viz.compare({"a": np.zeros((2, 2))}, cols=0), "cols must be a positive"),
    ],
)
def test_errors_say_what_was_expected(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_constant_and_non_finite_data_still_get_a_colour_range():
    fig = viz.slices(np.ones((2, 3, 3)))
    assert fig.layout.coloraxis.cmin < 1 < fig.layout.coloraxis.cmax
    vol = volume(2, 3, 3)
    vol[0, 0, 0] = np.nan
    fig = viz.slices(vol)
    assert fig.layout.coloraxis.cmax == pytest.approx(np.nanmax(vol))
