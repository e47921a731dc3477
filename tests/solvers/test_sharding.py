"""Runs over several devices (``devices=[...]``) and several processes (``jax.distributed``).

The sharded checks need 4 CPU devices, which ``XLA_FLAGS`` can only create before JAX starts:
they run in a child process (``sharded_checks.py``). The multi-host test starts 2 processes
on localhost with 2 CPU devices each (gloo collectives), each passing its own half of the
measurements, and compares with the single-process result computed here.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

import calcil as cc
from tests.solvers.sharded_checks import CHECKS
from tests.solvers.sharded_problem import problem

HERE = Path(__file__).parent


def _env(devices: int) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
    )
    env["JAX_PLATFORMS"] = "cpu"
    return env


@pytest.fixture(scope="module")
def sharded_report():
    proc = subprocess.run(
        [sys.executable, str(HERE / "sharded_checks.py")],
        env=_env(4),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", list(CHECKS))
def test_sharded_run(sharded_report, name):
    assert sharded_report[name] == "ok", sharded_report[name]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_match_one(tmp_path):
    port = str(_free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "multihost_worker.py"), str(i), "2", port, str(tmp_path)],
            env=_env(2),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    try:
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    for i, (p, out) in enumerate(zip(procs, outputs, strict=True)):
        assert p.returncode == 0, f"process {i}:\n{out[-4000:]}"
    objective, init, data = problem()
    single = cc.GradientSolver(objective, optimizer=optax.adam(1e-2)).run(
        init, data, iterations=30, log_every=10, progress=False
    )
    for i in range(2):
        x = np.load(tmp_path / f"x{i}.npy")
        loss = np.load(tmp_path / f"loss{i}.npy")
        np.testing.assert_allclose(x, single.params["x"], atol=1e-6)
        np.testing.assert_allclose(loss, single.history["loss/total"], rtol=5e-6)


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ([], "non-empty list of jax.Device"),
        (["cpu"], "non-empty list of jax.Device"),
        ("dup", "lists a device twice"),
    ],
)
def test_bad_devices_are_clear_errors(devices, message):
    objective, init, data = problem()
    if devices == "dup":
        devices = [jax.devices()[0]] * 2
    with pytest.raises(ValueError, match=message):
        cc.GradientSolver(objective, optimizer=optax.adam(1e-2)).run(
            init, data, iterations=1, progress=False, devices=devices
        )


def test_one_device_in_a_list_runs_there():
    objective, init, data = problem()
    device = jax.devices()[-1]
    result = cc.GradientSolver(objective, optimizer=optax.adam(1e-2)).run(
        init, data, iterations=3, progress=False, devices=[device]
    )
    assert result.params["x"].devices() == {device}
