"""One process of the multi-host test: ``python multihost_worker.py ID COUNT PORT OUT``.

Joins a ``jax.distributed`` job on localhost (CPU collectives through gloo), passes its own
block of the measurements, runs the sharded reconstruction over all processes' devices and
saves the result as ``OUT/x<ID>.npy`` and ``OUT/loss<ID>.npy``.
"""

import sys
from pathlib import Path

import jax

process_id, count, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(f"localhost:{port}", num_processes=count, process_id=process_id)

import numpy as np  # noqa: E402
import optax  # noqa: E402

import calcil as cc  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from sharded_problem import problem  # noqa: E402

objective, init, data = problem()
rows = len(data["y"]) // count
mine = {k: v[process_id * rows : (process_id + 1) * rows] for k, v in data.items()}
assert jax.device_count() == 2 * count and jax.local_device_count() == 2, jax.devices()
result = cc.GradientSolver(objective, optimizer=optax.adam(1e-2)).run(
    init, mine, iterations=30, log_every=10, progress=False, devices=jax.devices()
)
np.save(out / f"x{process_id}.npy", np.asarray(result.params["x"]))
np.save(out / f"loss{process_id}.npy", result.history["loss/total"])
print("done", process_id, flush=True)
