"""The README's promises: two set-up commands in the first shell block, runnable examples."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README.read_text(), flags=re.S)


def test_first_shell_block_holds_the_two_setup_commands():
    lang, body = BLOCKS[0]
    assert lang == "bash"
    lines = [line for line in body.splitlines() if line.strip() and not line.startswith("#")]
    assert lines == [
        "pip install . && python -m calcil demo",
        'pip install ".[dev]" && python -m pytest -n 2',
    ]


def test_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write runs/ (logs and checkpoints)
    code = [body for lang, body in BLOCKS if lang == "python"]
    assert code, "the README has no Python example"
    namespace = {}
    for block in code:
        exec(compile(block, str(README), "exec"), namespace)
    assert float(namespace["value"]) > 0
