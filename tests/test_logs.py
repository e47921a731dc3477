"""TensorBoard event logs: panels, event files readable by TensorBoard itself, directory checks,
the former module name."""

import subprocess
import sys

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from calcil.logs import TensorBoardLogger, check_writable, image_panels, read_scalars


def accumulate(log_dir):
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_real_images_are_scaled_to_unit_range():
    (panel,) = image_panels("x", np.array([[2.0, 4.0], [6.0, 10.0]])).values()
    np.testing.assert_allclose(panel, [[0.0, 0.25], [0.5, 1.0]])
    (flat,) = image_panels("c", np.full((3, 3), 7.0)).values()
    np.testing.assert_array_equal(flat, np.zeros((3, 3)))  # constant: no division by zero


def test_complex_images_give_amplitude_and_phase():
    u = np.array([[1.0, 2j], [-3.0, -4j]])
    panels = image_panels("u", u)
    assert set(panels) == {"u/amplitude", "u/phase"}
    np.testing.assert_allclose(panels["u/amplitude"], [[0, 1 / 3], [2 / 3, 1]], atol=1e-7)
    # phase mapped from [-pi, pi] to [0, 1] with fixed ends (not min-max)
    np.testing.assert_allclose(panels["u/phase"], [[0.5, 0.75], [1.0, 0.25]], atol=1e-7)


def test_volumes_become_a_montage_of_at_most_16_slices():
    vol = np.arange(4 * 2 * 3, dtype=float).reshape(4, 2, 3)
    (m,) = image_panels("v", vol).values()
    assert m.shape == (2 * 2, 2 * 3)  # 4 slices on a 2 x 2 grid
    np.testing.assert_allclose(m[2:, 3:], (vol[3] - vol.min()) / np.ptp(vol))
    (big,) = image_panels("v", np.random.default_rng(0).random((40, 5, 5))).values()
    assert big.shape == (4 * 5, 4 * 5)


def test_event_files_are_readable_by_tensorboard(tmp_path):
    with TensorBoardLogger(tmp_path) as log:
        for step in (0, 10, 20):
            log.scalars(step, {"loss/total": 1.0 / (step + 1), "prior/x/tv": step * 0.5})
        log.images(20, {"x": np.eye(8), "u": np.exp(1j * np.ones((4, 4)))})
    acc = accumulate(tmp_path)
    assert set(acc.Tags()["scalars"]) == {"loss/total", "prior/x/tv"}
    assert set(acc.Tags()["images"]) == {"x", "u/amplitude", "u/phase"}
    events = acc.Scalars("loss/total")
    assert [e.step for e in events] == [0, 10, 20]
    np.testing.assert_allclose([e.value for e in events], [1.0, 1 / 11, 1 / 21], rtol=1e-6)
    (image,) = acc.Images("x")
    assert (image.width, image.height, image.step) == (8, 8, 20)
    # our own reader agrees with TensorBoard's
    steps, values = read_scalars(tmp_path)["prior/x/tv"]
    np.testing.assert_array_equal(steps, [0, 10, 20])
    np.testing.assert_allclose(values, [0.0, 5.0, 10.0])


def test_read_scalars_prefers_the_later_file_for_repeated_steps(tmp_path):
    with TensorBoardLogger(tmp_path) as log:
        log.scalars(0, {"a": 1.0})
        log.scalars(5, {"a": 2.0})
    with TensorBoardLogger(tmp_path) as log:
        log.scalars(5, {"a": 3.0})
        log.scalars(9, {"a": 4.0})
    steps, values = read_scalars(tmp_path)["a"]
    np.testing.assert_array_equal(steps, [0, 5, 9])
    np.testing.assert_array_equal(values, [1.0, 3.0, 4.0])


def test_reading_an_empty_directory_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no TensorBoard event files"):
        read_scalars(tmp_path)


def test_unwritable_directories_are_refused_with_a_fix(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match="cannot be written to") as err:
        check_writable(blocker / "runs")
    assert "log_dir=None" in str(err.value)
    assert check_writable(tmp_path / "new" / "dir").is_dir()


def test_the_former_module_name_is_an_alias():
    import calcil
    import calcil.logs
    from calcil.logging import TensorBoardLogger as Logger
    from calcil.logging import check_writable as check
    from calcil.logging import image_panels as panels
    from calcil.logging import read_scalars as read

    assert calcil.logging is calcil.logs
    assert calcil.logging.read_scalars is read is read_scalars
    assert (Logger, check, panels) == (TensorBoardLogger, check_writable, image_panels)
    # also as the first import of a fresh interpreter
    code = "import calcil.logging as m; print(m.__name__, m.read_scalars.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["calcil.logs", "calcil.logs"]
