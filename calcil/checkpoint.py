"""Checkpoints: atomic, checksummed, pickle-free snapshots of a solver's state.

A checkpoint file holds a pytree of arrays (parameters, optimizer state, step, PRNG key) and
a dict of extra NumPy data (the history so far), serialised with ``flax.serialization``'s
msgpack. The layout on disk is::

    b"CALCILCK" | format version (1 byte) | SHA-256 of the payload (32 bytes) | msgpack payload

Writes go to a temporary file in the same directory, are flushed to disk and then renamed
over the final name (``os.replace`` is atomic), so a crash leaves either the old set of
checkpoints or the new one, never a half-written file under a checkpoint's name; the
temporary file of a save that was killed is removed by the next save (a solver's run holds
a lock on its ``log_dir``, so no other save is in progress there). Reading
verifies the checksum and compares every leaf's path, shape and dtype with the state of the
current run, so a corrupted or mismatched file is reported, not silently loaded.

Example:
    >>> import tempfile, jax.numpy as jnp
    >>> from calcil import checkpoint
    >>> d = tempfile.mkdtemp()
    >>> state = {"x": jnp.ones(3), "step": jnp.int32(10)}
    >>> path = checkpoint.save(d, 10, state, extra={"note": "hello"})
    >>> restored, extra = checkpoint.load(checkpoint.latest(d), target=state)
    >>> restored["x"].tolist(), int(restored["step"]), extra["note"]
    ([1.0, 1.0, 1.0], 10, 'hello')
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import jax
import numpy as np

__all__ = ["CheckpointError", "latest", "list_checkpoints", "load", "save"]

_MAGIC = b"CALCILCK"
_VERSION = 1
_HEADER = len(_MAGIC) + 1 + 32
_NAME = re.compile(r"^step-(\d+)\.ckpt$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: corrupted, from another format, or another problem."""


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _flatten(state) -> dict[str, np.ndarray]:
    """``{keystr(path): array}``; typed PRNG keys are stored as their raw key data."""
    flat, _ = jax.tree_util.tree_flatten_with_path(state)
    out = {}
    for path, leaf in flat:
        leaf = jax.random.key_data(leaf) if _is_key(leaf) else leaf
        out[jax.tree_util.keystr(path)] = np.asarray(leaf)
    return out


def list_checkpoints(directory) -> list[Path]:
    """The checkpoint files in ``directory``, oldest step first (``[]`` if none)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest(directory) -> Path | None:
    """The newest checkpoint in ``directory`` (highest step), or ``None``."""
    found = list_checkpoints(directory)
    return found[-1] if found else None


def save(directory, step: int, state, extra: dict | None = None, keep: int | None = 3) -> Path:
    """Write ``state`` (a pytree of arrays) and ``extra`` as ``directory/step-<step>.ckpt``.

    Args:
        directory: created if missing.
        step: the step number, part of the file name.
        state: any pytree of arrays (typed PRNG keys included).
        extra: a dict of NumPy arrays, numbers and strings (nested dicts allowed).
        keep: how many checkpoints to keep; older ones are deleted after the new one is in
            place. ``None`` keeps all.

    Returns:
        The path written.
    """
    from flax import serialization

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = serialization.msgpack_serialize(
        {"step": int(step), "state": _flatten(state), "extra": dict(extra or {})}
    )
    blob = _MAGIC + bytes([_VERSION]) + hashlib.sha256(payload).digest() + payload
    final = directory / f"step-{int(step):09d}.ckpt"
    for orphan in directory.glob(".step-*.ckpt.*.tmp"):  # left by a save that was killed
        orphan.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(directory)
    if keep is not None:
        for old in list_checkpoints(directory)[:-keep]:
            old.unlink(missing_ok=True)
    return final


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read(path: Path) -> dict:
    from flax import serialization

    blob = path.read_bytes()
    fix = (
        f"The file was left as it is; delete it (or move it away) to resume from an older "
        f"checkpoint in {path.parent}, or start a fresh run in another log_dir."
    )
    if len(blob) < _HEADER or blob[: len(_MAGIC)] != _MAGIC:
        raise CheckpointError(f"{path} is not a calcil checkpoint (bad header). {fix}")
    if blob[len(_MAGIC)] != _VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {blob[len(_MAGIC)]}, this calcil reads "
            f"version {_VERSION}. {fix}"
        )
    digest, payload = blob[len(_MAGIC) + 1 : _HEADER], blob[_HEADER:]
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(
            f"{path} is corrupted: its checksum does not match its contents (truncated or "
            f"damaged file). {fix}"
        )
    try:
        content = serialization.msgpack_restore(payload)
    except Exception as err:  # a valid checksum over an invalid payload: written by a bug
        raise CheckpointError(f"{path} could not be decoded ({err}). {fix}") from err
    if not isinstance(content, dict) or not {"step", "state", "extra"} <= set(content):
        raise CheckpointError(f"{path} lacks the step/state/extra records. {fix}")
    return content


def load(path, target) -> tuple:
    """Read a checkpoint into the structure of ``target``.

    Args:
        path: a checkpoint file written by :func:`save`.
        target: a pytree with the structure, shapes and dtypes the state must have (the
            freshly initialised state of the run that resumes).

    Returns:
        ``(state, extra)``: ``state`` shaped like ``target`` (arrays on the default device),
        ``extra`` the dict given to :func:`save`.

    Raises:
        CheckpointError: the file is corrupted, or its state does not match ``target``
            (other variables, shapes, dtypes or optimizer), with the differences listed.
    """
    path = Path(path)
    content = _read(path)
    stored = content["state"]
    flat, treedef = jax.tree_util.tree_flatten_with_path(target)
    problems, leaves = [], []
    expected = set()
    for keys, leaf in flat:
        name = jax.tree_util.keystr(keys)
        expected.add(name)
        want = np.asarray(jax.random.key_data(leaf) if _is_key(leaf) else leaf)
        if name not in stored:
            problems.append(f"{name} is missing (this run has {want.shape} {want.dtype})")
            continue
        got = np.asarray(stored[name])
        if got.shape != want.shape or got.dtype != want.dtype:
            problems.append(
                f"{name} is {got.shape} {got.dtype} in the checkpoint, {want.shape} "
                f"{want.dtype} in this run"
            )
            continue
        leaves.append(
            jax.random.wrap_key_data(got, impl=jax.random.key_impl(leaf)) if _is_key(leaf) else got
        )
    extra_names = sorted(set(stored) - expected)
    if extra_names:
        problems.append(f"the checkpoint has state this run lacks: {extra_names[:5]}")
    if problems:
        listed = "; ".join(problems[:6]) + ("; ..." if len(problems) > 6 else "")
        raise CheckpointError(
            f"{path} does not match this run: {listed}. It was written for other parameters, "
            "shapes or optimizers. Resume with the same problem set-up, or use a new log_dir; "
            "the checkpoint was left as it is."
        )
    state = jax.tree_util.tree_unflatten(treedef, [jax.numpy.asarray(x) for x in leaves])
    return state, content["extra"]
