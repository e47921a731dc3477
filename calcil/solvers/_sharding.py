"""Running a solver over several devices: the measurement axis of the data is sharded.

``run(..., devices=[d0, d1, ...])`` builds a one-axis :class:`jax.sharding.Mesh` (axis
``"data"``) and runs every compiled chunk under :func:`jax.shard_map`: the parameters and the
solver state are replicated, every data leaf is split along its leading (measurement) axis,
and each device evaluates the forward model and the data terms on its own measurements.
The data terms are then reduced over the devices (``psum`` for ``reduction="sum"``,
``pmean`` for ``"mean"``), so the objective, and through JAX's transpose rules its gradient,
is that of all the measurements: the sum of the devices' gradients for summed losses, their
mean for averaged ones. The update then runs identically on every device. A sharded run
therefore equals the single-device run up to the order of floating-point sums.

Why ``shard_map`` and not the automatic partitioner: given a sharded batch, XLA's
partitioner gathers the whole batch onto every device before each FFT, so nothing scales;
inside ``shard_map`` each device transforms only its own measurements and the only
communication per step is one all-reduce of the gradient (and of a few scalars).

Mini-batches keep the single-device sampling: every device computes the same global indices
(shuffled epochs from ``key``), takes the rows it holds (zeros for the others), and a
reduce-scatter (``psum_scatter``) hands device ``j`` the ``j``-th block of the batch. Only the
batch crosses devices, and indexing happens on local arrays, so it works under the default
explicit mesh axes, where indexing a sharded array in a ``jit`` fails.

Several processes (hosts): after ``jax.distributed.initialize()``, ``devices=jax.devices()``
spans all processes; each process passes its own measurements (host arrays: its block of
rows, processes in order) or global ``jax.Array``\\ s, and the same ``init``. Only process 0
writes TensorBoard files and checkpoints.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from calcil.objective import leaf_paths

AXIS = "data"

__all__ = [
    "AXIS",
    "check_data",
    "make_mesh",
    "place_data",
    "place_state",
    "reduce_loss_terms",
    "sample",
    "shard_chunk",
]


def make_mesh(devices):
    """``(mesh or None, device or None)``: a mesh for several devices, a device for one."""
    if devices is None:
        return None, None
    devices = [devices] if isinstance(devices, jax.Device) else list(devices)
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise ValueError(
            f"devices must be a non-empty list of jax.Device, e.g. jax.devices(); got {devices!r}"
        )
    if len(set(devices)) != len(devices):
        raise ValueError(f"devices lists a device twice: {devices!r}")
    if len(devices) == 1:
        return None, devices[0]
    return jax.make_mesh((len(devices),), (AXIS,), devices=devices), None


def check_data(data, mesh, batch_size):
    """Every data leaf needs a leading measurement axis the devices divide evenly."""
    n_dev = mesh.devices.size
    leaves = jax.tree_util.tree_leaves(data)
    paths = leaf_paths(data) if leaves else []
    shapes = {p: tuple(np.shape(x)) for p, x in zip(paths, leaves, strict=True)}
    if not leaves:
        raise ValueError(
            f"running on {n_dev} devices shards the measurement axis of data, but data has no "
            "arrays. Pass the measurements as data, or run on one device."
        )
    local = jax.process_count() > 1
    for path, shape in shapes.items():
        rows = shape[0] if shape else None
        if rows is None or (not local and rows % n_dev):
            raise ValueError(
                f"running on {n_dev} devices splits every data leaf along its leading "
                f"(measurement) axis into {n_dev} equal parts; {path!r} has shape {shape}. "
                f"Give every leaf a leading axis divisible by {n_dev} (data shapes: {shapes}); "
                "arrays shared by all measurements (a PSF) belong in the forward model."
            )
    if batch_size is not None and batch_size % n_dev:
        raise ValueError(
            f"batch_size={batch_size} does not split evenly over {n_dev} devices: use a "
            f"multiple of {n_dev}"
        )


def place_data(data, mesh):
    """Every data leaf as a global array split by rows over ``mesh``.

    Host arrays are the whole data in a single process, and this process's block of rows
    when there are several; a global ``jax.Array`` is resharded if needed.
    """
    rows = NamedSharding(mesh, P(AXIS))

    def put(x):
        if jax.process_count() > 1 and not isinstance(x, jax.Array):
            return jax.make_array_from_process_local_data(rows, np.asarray(x))
        return jax.device_put(x, rows)

    return jax.tree_util.tree_map(put, data)


def place_state(state, mesh):
    """The solver state replicated on every device of ``mesh``.

    With several processes each one holds the same state (same ``init``, same ``key``) and
    builds its copies from its own value (``device_put`` only reaches this process's devices).
    """
    replicated = NamedSharding(mesh, P())
    if jax.process_count() == 1:
        return jax.device_put(state, replicated)

    def put(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            impl = jax.random.key_impl(x)
            return jax.random.wrap_key_data(put(jax.random.key_data(x)), impl=impl)
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, replicated, lambda index: host[index])

    return jax.tree_util.tree_map(put, state)


def shard_chunk(chunk, mesh):
    """``chunk(state, data, n, report)`` under ``shard_map``: state replicated, data split by
    rows."""
    specs = (P(), P(AXIS), P(), P())
    return jax.shard_map(chunk, mesh=mesh, in_specs=specs, out_specs=(P(), P()))


def reduce_loss_terms(loss, terms: dict, axis: str) -> dict:
    """Data terms of this device's measurements -> the terms of all measurements."""
    reductions = loss.reductions()  # each term's, in the order of loss.terms
    if len(reductions) != len(terms):
        raise ValueError(
            f"a sharded run reduces each data term over the devices by its reduction, but "
            f"{loss!r} reports {len(terms)} terms for {len(reductions)} reductions; give the "
            "loss one term per reduction or run on one device."
        )
    return {
        name: jax.lax.psum(v, axis) if r == "sum" else jax.lax.pmean(v, axis)
        for (name, v), r in zip(terms.items(), reductions, strict=True)
    }


def sample(data, idx, axis):
    """Rows ``idx`` (global indices, the same on every device) of the sharded ``data``:
    device ``j`` receives the ``j``-th of ``n_devices`` equal blocks of them."""
    n_local = jax.tree_util.tree_leaves(data)[0].shape[0]
    local = idx - jax.lax.axis_index(axis) * n_local
    here = (local >= 0) & (local < n_local)
    safe = jnp.clip(local, 0, n_local - 1)

    def rows(a):
        taken = jnp.take(a, safe, axis=0)
        mask = here.reshape((-1,) + (1,) * (a.ndim - 1))
        return jax.lax.psum_scatter(
            jnp.where(mask, taken, jnp.zeros((), a.dtype)), axis, scatter_dimension=0, tiled=True
        )

    return jax.tree_util.tree_map(rows, data)
