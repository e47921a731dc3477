"""Package-level checks: light import, runnable docstring examples."""

import doctest
import importlib
import pkgutil
import subprocess
import sys

import pytest

import calcil

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
