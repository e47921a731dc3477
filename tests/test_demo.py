"""``python -m calcil demo``: a real reconstruction end to end, its report and its logs."""

import re
import subprocess
import sys

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from calcil.__main__ import demo, demo_image, main, psnr


def test_demo_gains_psnr_and_writes_report_logs_and_checkpoints(tmp_path):
    r = demo(size=128, iterations=150, out=tmp_path, progress=False)
    assert r["status"] == "max_iterations" and r["iterations"] == 150
    assert r["psnr_reconstruction"] - r["psnr_measurement"] > 2.0, r
    page = r["report"].read_text()
    assert r["report"] == tmp_path / "report.html"
    assert not re.search(r"<script[^>]*\ssrc=[\"']?https?:", page)  # offline: plotly.js inline
    assert "Plotly.newPlot" in page
    assert page.count('class="plotly-graph-div"') == 2
    assert r["log_dir"].parent == tmp_path
    assert sorted(p.name for p in (r["log_dir"] / "checkpoints").iterdir())
    acc = EventAccumulator(str(r["log_dir"]), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    assert {"loss/total", "loss/l2", "prior/x/tv"} <= set(acc.Tags()["scalars"])
    assert acc.Tags()["images"]


def test_a_second_demo_run_does_not_collide_with_the_first(tmp_path):
    a = demo(size=32, iterations=5, out=tmp_path, progress=False)
    b = demo(size=32, iterations=5, out=tmp_path, progress=False)
    assert a["log_dir"] != b["log_dir"] and b["report"].exists()


def test_psnr_is_ten_log10_of_one_over_the_mse():
    truth = np.zeros((4, 4))
    assert psnr(truth + 0.1, truth) == pytest.approx(20.0)


def test_command_line_prints_psnr_runtime_and_where_the_files_are(tmp_path, capsys):
    assert (
        main(
            ["demo", "--size", "32", "--iterations", "10", "--out", str(tmp_path), "--no-progress"]
        )
        == 0
    )
    out = capsys.readouterr().out
    for part in (
        "PSNR measurement",
        "PSNR reconstruction",
        "run time",
        "report.html",
        f"tensorboard --logdir {tmp_path}",
    ):
        assert part in out


def test_help_lists_the_options():
    out = subprocess.run(
        [sys.executable, "-m", "calcil", "demo", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for option in ("--size", "--iterations", "--out", "--weight"):
        assert option in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "8"], "--size must be at least 16"),
        (["--iterations", "0"], "--iterations must be positive"),
        (["--sigma", "0"], "--sigma > 0"),
    ],
)
def test_bad_options_are_explained(args, message, capsys):
    with pytest.raises(SystemExit):
        main(["demo", *args])
    assert message in capsys.readouterr().err


def test_without_scikit_image_the_demo_uses_the_shepp_logan_phantom(tmp_path, monkeypatch):
    import calcil as cc

    monkeypatch.setitem(sys.modules, "skimage", None)  # import skimage now raises ImportError
    r = demo(size=128, iterations=150, out=tmp_path, progress=False)
    assert r["image"] == "the Shepp-Logan phantom"
    assert r["psnr_reconstruction"] - r["psnr_measurement"] > 2.0, r
    np.testing.assert_array_equal(
        demo_image(64)[0],
        np.asarray(cc.phantoms.shepp_logan((64, 64))),
    )
