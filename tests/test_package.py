"""Package-level checks: light import, runnable docstring examples, the demo command."""

import doctest
import importlib
import pkgutil
import subprocess
import sys

import pytest

import calcil
from calcil.__main__ import main

HEAVY = ("plotly", "tensorboardX", "tqdm", "flax", "optax", "scipy")


def test_import_does_not_pull_heavy_modules():
    code = f"import sys, calcil; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _modules():
    for info in pkgutil.walk_packages(calcil.__path__, "calcil."):
        if info.name != "calcil.__main__":
            yield info.name


@pytest.mark.parametrize("name", sorted(_modules()))
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_every_public_operator_has_an_example():
    from calcil import operators as O

    missing = [
        name
        for name in O.__all__
        if isinstance(getattr(O, name), type)
        and name not in ("Operator", "LinearOperator")
        and ">>>" not in (getattr(O, name).__doc__ or "")
    ]
    assert missing == []


def test_demo_prints_a_passing_summary(capsys):
    assert main(["demo", "--size", "64", "--psf-size", "7"]) == 0
    out = capsys.readouterr().out
    assert "64x64" in out and "(ok)" in out and "flux kept 1.0000" in out


def test_demo_rejects_a_psf_larger_than_the_image(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--size", "8", "--psf-size", "9"])
    assert "--psf-size 9 is larger than --size 8" in capsys.readouterr().err


def test_demo_as_a_module_command():
    out = subprocess.run(
        [sys.executable, "-m", "calcil", "demo", "--size", "32", "--psf-size", "5"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.startswith("calcil demo: blurred a 32x32 image")
