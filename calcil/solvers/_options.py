"""A run's options, validated once, and the chunk schedule they imply.

:func:`run_options` turns ``run``'s keyword arguments into a frozen :class:`RunOptions` (or
a ``ValueError``/``TypeError`` that says what to pass); :meth:`RunOptions.chunks` yields the
chunks between host events: a chunk ends at every log point, image, checkpoint and at the end.

Example:
    >>> opts = run_options(iterations=7, log_every=3)
    >>> [(c.start, c.stop, c.log) for c in opts.chunks(0)]
    [(0, 3, True), (3, 6, True), (6, 7, True)]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from calcil._internal.integers import as_count

__all__ = ["Chunk", "RunOptions", "run_options"]


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Steps ``start .. stop - 1`` and what the host does after them."""

    start: int
    stop: int
    log: bool  # a log point: TensorBoard scalars, callbacks, stop rules
    image: bool
    checkpoint: bool

    @property
    def length(self) -> int:
        return self.stop - self.start


@dataclasses.dataclass(frozen=True)
class RunOptions:
    iterations: int
    batch_size: int | None
    key: Any
    log_dir: Any
    log_every: int
    images: dict[str, Callable]
    image_every: int | None
    checkpoint_every: int | None
    keep_checkpoints: int
    resume: bool
    callbacks: tuple[Callable, ...]
    tol: float | None
    max_time: float | None
    progress: bool
    devices: Any

    def _due(self, step: int, period: int | None) -> bool:
        return bool(period) and (step % period == 0 or step == self.iterations)

    def chunks(self, done: int) -> Iterator[Chunk]:
        """The chunks from step ``done`` to ``iterations``."""
        image_every = (self.image_every or self.log_every) if self.images else None
        periods = (self.log_every, self.checkpoint_every, image_every)
        while done < self.iterations:
            stop = self.iterations
            for period in periods:
                if period:
                    stop = min(stop, (done // period + 1) * period)
            yield Chunk(
                done,
                stop,
                log=self._due(stop, self.log_every),
                image=self._due(stop, image_every),
                checkpoint=self._due(stop, self.checkpoint_every),
            )
            done = stop


def _count(name, value, minimum=1, allow_none=False):
    """``value`` as a Python int >= ``minimum`` (NumPy integers accepted), or a ``ValueError``."""
    if value is None and allow_none:
        return None
    kind = {0: "a non-negative integer", 1: "a positive integer"}[minimum]
    return as_count(name, value, minimum, f"{kind} (a Python or NumPy integer)")


def run_options(
    iterations=100,
    batch_size=None,
    key=None,
    log_dir=None,
    log_every=50,
    images=None,
    image_every=None,
    checkpoint_every=None,
    keep_checkpoints=3,
    resume=False,
    callbacks=(),
    tol=None,
    max_time=None,
    progress=True,
    devices=None,
) -> RunOptions:
    """``run``'s arguments, checked: counts are positive integers, ``images`` and
    ``callbacks`` are functions, and what writes files has a ``log_dir``."""
    images = dict(images or {})
    for name, fn in images.items():
        if not callable(fn):
            raise TypeError(f"images maps names to functions params -> array; {name!r} is {fn!r}")
    callbacks = (callbacks,) if callable(callbacks) else tuple(callbacks)
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"callbacks must be functions (step, params, terms), got {cb!r}")
    options = RunOptions(
        iterations=_count("iterations", iterations, minimum=0),
        batch_size=_count("batch_size", batch_size, allow_none=True),
        key=key,
        log_dir=log_dir,
        log_every=_count("log_every", log_every),
        images=images,
        image_every=_count("image_every", image_every, allow_none=True),
        checkpoint_every=_count("checkpoint_every", checkpoint_every, allow_none=True),
        keep_checkpoints=_count("keep_checkpoints", keep_checkpoints),
        resume=bool(resume),
        callbacks=callbacks,
        tol=tol,
        max_time=max_time,
        progress=bool(progress),
        devices=devices,
    )
    needs_dir = [
        name
        for name, value in (
            ("images", images),
            ("checkpoint_every", options.checkpoint_every),
            ("resume", resume),
        )
        if value
    ]
    if needs_dir and log_dir is None:
        raise ValueError(
            f"{', '.join(needs_dir)} need log_dir=...: the directory for the "
            "TensorBoard files and checkpoints"
        )
    return options
