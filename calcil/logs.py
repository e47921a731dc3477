"""TensorBoard event logs: writing them with tensorboardX, and reading them back.

Solvers write, under ``log_dir``: every term of the objective (``loss/total``, ``loss/l2``,
``prior/x/tv`` ...), each group's learning rate and gradient norm (``lr/<group>``,
``grad_norm/<group>``), the speed (``perf/steps_per_second``) and images. Images follow one
convention (:func:`image_panels`): real arrays are scaled to [0, 1] by their own min and max,
complex ones become an amplitude and a phase panel, and 3D (or deeper) arrays a montage of up
to 16 evenly spaced slices along the leading axes.

:func:`read_scalars` parses the event files without TensorBoard, so ``viz.history(log_dir)``
works with the runtime dependencies only.

The module was named ``calcil.logging`` before; that name stays an alias of this one
(``calcil.logging.read_scalars``, ``from calcil.logging import TensorBoardLogger``).

Example:
    >>> import tempfile, numpy as np
    >>> from calcil.logs import TensorBoardLogger, read_scalars
    >>> d = tempfile.mkdtemp()
    >>> with TensorBoardLogger(d) as log:
    ...     log.scalars(0, {"loss/total": 2.0})
    ...     log.scalars(10, {"loss/total": 1.0})
    ...     log.images(10, {"x": np.eye(4)})
    >>> steps, values = read_scalars(d)["loss/total"]
    >>> steps.tolist(), values.tolist()
    ([0, 10], [2.0, 1.0])
"""

from __future__ import annotations

import math
import os
import struct
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ["TensorBoardLogger", "check_writable", "image_panels", "read_scalars"]

MAX_MONTAGE = 16


def check_writable(log_dir) -> Path:
    """Create ``log_dir`` if needed and make sure files can be written in it.

    Raises:
        ValueError: naming the directory, the reason, and what to do instead.
    """
    path = Path(log_dir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ValueError(
            f"log_dir {str(log_dir)!r} cannot be written to ({reason}). Choose a directory "
            "you can create and write, e.g. log_dir='runs/experiment-1', or log_dir=None to "
            "run without TensorBoard logs and checkpoints."
        ) from err
    return path


def _normalise(a: np.ndarray, low=None, high=None) -> np.ndarray:
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low = a.min() if low is None else low
    high = a.max() if high is None else high
    if high <= low:
        return np.zeros(a.shape, np.float32)
    return ((a - low) / (high - low)).clip(0, 1).astype(np.float32)


def _montage(a: np.ndarray) -> np.ndarray:
    """2D as is; more dimensions: up to 16 evenly spaced slices of the leading axes in a grid."""
    if a.ndim == 0:
        a = a.reshape(1, 1)
    if a.ndim == 1:
        return a[None, :]
    if a.ndim == 2:
        return a
    stack = a.reshape(-1, *a.shape[-2:])
    picks = np.unique(np.linspace(0, len(stack) - 1, min(len(stack), MAX_MONTAGE)).round())
    stack = stack[picks.astype(int)]
    cols = math.ceil(math.sqrt(len(stack)))
    rows = math.ceil(len(stack) / cols)
    h, w = stack.shape[1:]
    grid = np.zeros((rows * h, cols * w), stack.dtype)
    for k, tile in enumerate(stack):
        r, c = divmod(k, cols)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = tile
    return grid


def image_panels(name: str, array) -> dict[str, np.ndarray]:
    """The 2D panels (float32 in [0, 1]) that represent ``array`` as images.

    Real: ``{name: scaled}``. Complex: ``{name + "/amplitude": |u| scaled,
    name + "/phase": (angle(u) + pi) / (2 pi)}``. 3D and deeper: montages (see module doc).
    """
    a = np.asarray(array)
    if np.iscomplexobj(a):
        return {
            f"{name}/amplitude": _normalise(_montage(np.abs(a))),
            f"{name}/phase": _normalise(_montage(np.angle(a)), -np.pi, np.pi),
        }
    return {name: _normalise(_montage(a))}


class TensorBoardLogger:
    """Scalars and images for TensorBoard, written by ``tensorboardX`` under ``log_dir``.

    Args:
        log_dir: directory for the event files (created; must be writable).

    Use as a context manager or call :meth:`close` to flush the files.
    """

    def __init__(self, log_dir):
        from tensorboardX import SummaryWriter

        self.log_dir = check_writable(log_dir)
        # tensorboardX names files by the second and opens them with "wb": a unique suffix
        # keeps a second run started within the same second (a resume) from erasing the first.
        suffix = f".{os.getpid()}.{uuid.uuid4().hex[:8]}"
        self._writer = SummaryWriter(str(self.log_dir), flush_secs=30, filename_suffix=suffix)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        for tag, value in values.items():
            self._writer.add_scalar(tag, float(value), int(step))

    def images(self, step: int, images: Mapping[str, object]) -> None:
        """Write each array as images following :func:`image_panels`."""
        for name, array in images.items():
            for tag, panel in image_panels(name, array).items():
                self._writer.add_image(tag, panel, int(step), dataformats="HW")

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _records(path: Path):
    """The records of a TFRecord file (length, crc, data, crc); a torn tail is skipped."""
    with open(path, "rb") as f:
        while True:
            header = f.read(12)
            if len(header) < 12:
                return
            (length,) = struct.unpack("<Q", header[:8])
            data = f.read(length)
            if len(data) < length or len(f.read(4)) < 4:
                return
            yield data


def read_scalars(log_dir) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every scalar in the event files of ``log_dir``: ``{tag: (steps, values)}``.

    Files are read in the order they were written; when a step appears twice (a resumed
    run), the later value wins. Steps are sorted.
    """
    from tensorboardX.proto import event_pb2

    files = sorted(
        Path(log_dir).glob("events.out.tfevents.*"), key=lambda p: (p.stat().st_mtime_ns, p.name)
    )
    if not files:
        raise FileNotFoundError(f"no TensorBoard event files in {str(log_dir)!r}")
    table: dict[str, dict[int, float]] = {}
    for path in files:
        for record in _records(path):
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    table.setdefault(value.tag, {})[int(event.step)] = value.simple_value
    out = {}
    for tag, by_step in table.items():
        steps = np.array(sorted(by_step), dtype=np.int64)
        out[tag] = (steps, np.array([by_step[s] for s in steps], dtype=np.float64))
    return out
