"""Checkpoint files: round trips, atomic replacement, corruption and mismatch errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from calcil import checkpoint
from calcil.checkpoint import CheckpointError


def state():
    x = jnp.arange(6.0).reshape(2, 3)
    return {
        "params": {"x": x, "u": jnp.array([1 + 2j, -3j], jnp.complex64)},
        "opt": optax.adam(0.1).init({"x": x}),
        "step": jnp.int32(7),
        "rng": jax.random.key(42),
        "flag": jnp.array(True),
    }


def test_round_trip_keeps_values_dtypes_and_keys(tmp_path):
    s = state()
    path = checkpoint.save(tmp_path, 7, s, extra={"history": {"loss": np.arange(3.0)}})
    assert path.name == "step-000000007.ckpt"
    restored, extra = checkpoint.load(path, target=s)
    for a, b in zip(jax.tree_util.tree_leaves(s), jax.tree_util.tree_leaves(restored), strict=True):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    # the restored key draws the same numbers as the original
    np.testing.assert_array_equal(
        jax.random.normal(restored["rng"], (3,)), jax.random.normal(s["rng"], (3,))
    )
    np.testing.assert_array_equal(extra["history"]["loss"], np.arange(3.0))


def test_no_pickle_in_the_file(tmp_path):
    path = checkpoint.save(tmp_path, 1, state())
    blob = path.read_bytes()
    assert blob.startswith(b"CALCILCK")
    assert b"\x80\x04" not in blob[:64] and b"cnumpy" not in blob  # no pickle protocol/globals


def test_keeps_the_newest_and_lists_by_step(tmp_path):
    for step in (5, 100, 20, 40):
        checkpoint.save(tmp_path, step, state(), keep=3)
    names = [p.name for p in checkpoint.list_checkpoints(tmp_path)]
    assert names == ["step-000000020.ckpt", "step-000000040.ckpt", "step-000000100.ckpt"]
    assert checkpoint.latest(tmp_path).name == "step-000000100.ckpt"
    assert checkpoint.latest(tmp_path / "missing") is None
    assert not list(tmp_path.glob("*.tmp"))  # no temporary files left behind


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    good = checkpoint.save(tmp_path, 1, state())
    before = good.read_bytes()

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "replace", broken)
    with pytest.raises(OSError, match="No space"):
        checkpoint.save(tmp_path, 1, {"other": jnp.zeros(1)})
    assert good.read_bytes() == before
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda b: b[: len(b) // 2], "corrupted"),
        (lambda b: b[:-10] + bytes(10), "corrupted"),
        (lambda b: b"PICKLE!!" + b[8:], "not a calcil checkpoint"),
        (lambda b: b[:8] + bytes([9]) + b[9:], "format version 9"),
        (lambda b: b"", "not a calcil checkpoint"),
    ],
)
def test_damaged_files_raise_and_stay_untouched(tmp_path, damage, match):
    path = checkpoint.save(tmp_path, 3, state())
    path.write_bytes(damage(path.read_bytes()))
    damaged = path.read_bytes()
    with pytest.raises(CheckpointError, match=match) as err:
        checkpoint.load(path, target=state())
    assert "left as it is" in str(err.value)
    assert path.read_bytes() == damaged


def test_structural_mismatch_lists_the_differences(tmp_path):
    path = checkpoint.save(tmp_path, 3, state())
    other = state()
    other["params"]["x"] = jnp.zeros((4, 4))
    other["params"]["new"] = jnp.zeros(2)
    with pytest.raises(CheckpointError) as err:
        checkpoint.load(path, target=other)
    message = str(err.value)
    assert "['params']['x'] is (2, 3) float32 in the checkpoint, (4, 4) float32" in message
    assert "['params']['new'] is missing" in message
    with pytest.raises(CheckpointError, match="lacks"):
        checkpoint.load(path, target={"step": jnp.int32(0)})


def test_dtype_mismatch_is_reported(tmp_path):
    path = checkpoint.save(tmp_path, 3, {"x": jnp.zeros(3)})
    with pytest.raises(CheckpointError, match=r"float32 in the checkpoint, .* int32"):
        checkpoint.load(path, target={"x": jnp.zeros(3, jnp.int32)})


def test_the_next_save_removes_temporary_files_of_a_killed_save(tmp_path):
    orphan = tmp_path / ".step-000000005.ckpt.k2j4x.tmp"
    orphan.write_bytes(b"half a checkpoint")
    checkpoint.save(tmp_path, 10, {"x": jnp.ones(2)})
    assert not orphan.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["step-000000010.ckpt"]
