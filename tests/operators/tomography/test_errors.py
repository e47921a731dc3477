"""Bad geometry gets a ValueError that names the argument and says how to fix it."""

import jax.numpy as jnp
import numpy as np
import pytest

import calcil as cc

O = cc.operators
ANGLES = np.linspace(0, np.pi, 4)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: O.ParallelProjection((8, 8), np.zeros((2, 3))), r"angles must be a non-empty 1-D"),
        (lambda: O.ParallelProjection((8, 8), []), r"angles must be a non-empty 1-D"),
        (lambda: O.ParallelProjection((8, 8), [0.0, np.nan]), r"angles must be finite"),
        (lambda: O.ParallelProjection((8, 8), 0.5), r"angles must be a non-empty 1-D"),
        (
            lambda: O.ParallelProjection((8, 8), ANGLES, n_detector=0),
            r"n_detector must be a positive",
        ),
        (lambda: O.ParallelProjection((8, 8), ANGLES, dx=0.0), r"dx must be a positive finite"),
        (
            lambda: O.ParallelProjection((8, 8), ANGLES, detector_spacing=np.inf),
            r"detector_spacing",
        ),
        (lambda: O.ParallelProjection((8,), ANGLES), r"input_shape must be \(ny, nx\) or \(nz"),
        (lambda: O.ParallelProjection((8, 0), ANGLES), r"positive sizes"),
        (
            lambda: O.FanBeamProjection((8, 8), ANGLES, 5.0, 10.0, 12, 1.0),
            r"source_distance=5 .*half-diagonal 5.65",
        ),
        (
            lambda: O.FanBeamProjection((8, 8), ANGLES, np.inf, 10.0, 12, 1.0),
            r"source_distance must be finite",
        ),
        (
            lambda: O.FanBeamProjection((8, 8), ANGLES, 20.0, -1.0, 12, 1.0),
            r"detector_distance=-1 .*>= 0",
        ),
        (
            lambda: O.FanBeamProjection((8, 8), ANGLES, 20.0, 10.0, 0, 1.0),
            r"n_detector must be a positive",
        ),
        (
            lambda: O.FanBeamProjection((8, 8), ANGLES, 20.0, 10.0, 12, 0.0),
            r"detector_spacing must be a positive",
        ),
        (
            lambda: O.FanBeamProjection((2, 8, 8), ANGLES, 20.0, 10.0, 12, 1.0),
            r"input_shape must be \(ny, nx\) with",
        ),
        (
            lambda: O.ConeBeamProjection((4, 8, 8), ANGLES, 20.0, 10.0, (0, 5), 1.0),
            r"rows must be a positive",
        ),
        (
            lambda: O.ConeBeamProjection((4, 8, 8), ANGLES, 20.0, 10.0, (5,), 1.0),
            r"detector_shape must be \(rows, cols\)",
        ),
        (
            lambda: O.ConeBeamProjection((4, 8, 8), ANGLES, 20.0, 10.0, (5, 5), (1.0, 1.0, 1.0)),
            r"detector_spacing must be a number or",
        ),
        (
            lambda: O.ConeBeamProjection((4, 8, 8), ANGLES, 3.0, 10.0, (5, 5), 1.0),
            r"source_distance=3 .*outside the object",
        ),
        (
            lambda: O.ConeBeamProjection((4, 8, 8), ANGLES, 20.0, 10.0, (80, 5), 1.0),
            r"cone half-angle of 45 degrees",
        ),
        (
            lambda: O.ConeBeamProjection((8, 8), ANGLES, 20.0, 10.0, (5, 5), 1.0),
            r"input_shape must be \(nz, ny, nx\)",
        ),
    ],
)
def test_bad_geometry_is_a_clear_error(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_wrong_image_shape_names_both_shapes():
    op = O.ParallelProjection((8, 8), ANGLES)
    with pytest.raises(ValueError, match=r"\(8, 8\).*\(8, 9\)|\(8, 9\).*\(8, 8\)"):
        op(jnp.zeros((8, 9)))


def test_the_message_says_how_to_fix_it():
    with pytest.raises(ValueError, match="move the source further"):
        O.FanBeamProjection((8, 8), ANGLES, 5.0, 10.0, 12, 1.0)
    with pytest.raises(ValueError, match=r"np\.linspace"):
        O.ParallelProjection((8, 8), np.zeros((2, 2)))
