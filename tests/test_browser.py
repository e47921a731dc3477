"""The viewers in a real browser: headless Chromium driven by Playwright.

Needs Debian's ``chromium`` (``/usr/bin/chromium``) and the ``playwright`` Python package
(no browser download: Playwright is pointed at that executable). ``.ci/run`` installs the
package when it is missing and sets ``CALCIL_REQUIRE_BROWSER=1``, so in CI a missing browser
fails these tests instead of skipping them.
"""

import io
import os
import shutil

import numpy as np
import pytest

from calcil import viz

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Flags for a sandboxed machine without network: no background connections, no GPU.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CALCIL_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed: apt-get install chromium")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def _image(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)


def _shown_slice(page) -> float:
    """The mean of the z data the first heatmap displays now."""
    return page.evaluate(
        """() => {
            const gd = document.querySelector('.js-plotly-plot');
            const z = gd._fullData[0].z;  // decoded (data[0].z may be base64-typed)
            let s = 0, n = 0;
            for (const row of z) for (const v of row) { s += v; n += 1; }
            return s / n;
        }"""
    )


def test_moving_the_slices_slider_changes_the_displayed_slice(browser, tmp_path):
    # Slice k is a constant k plus a disk, so the mean identifies the slice shown.
    yy, xx = np.mgrid[0:48, 0:48]
    disk = ((yy - 24) ** 2 + (xx - 24) ** 2 < 100).astype(np.float32)
    vol = np.stack([k + disk * (k % 3) for k in range(10)]).astype(np.float32)
    path = tmp_path / "slices.html"
    viz.slices(vol).write_html(path, include_plotlyjs=True)

    page = browser.new_page(viewport={"width": 900, "height": 700})
    page.goto(path.as_uri())
    page.wait_for_selector(".slider-rail-rect")
    first = _shown_slice(page)
    before = _image(page.screenshot())

    rail = page.locator(".slider-rail-rect").first.bounding_box()
    page.mouse.click(rail["x"] + rail["width"] - 2, rail["y"] + rail["height"] / 2)
    page.wait_for_timeout(300)
    last = _shown_slice(page)
    after = _image(page.screenshot())
    page.close()

    means = vol.mean(axis=(1, 2))
    assert first == pytest.approx(float(means[vol.shape[0] // 2]), rel=1e-5)  # opens centred
    assert last == pytest.approx(float(means[-1]), rel=1e-5)  # the slider's end: slice 9
    assert last != first
    assert np.abs(after - before).mean() > 0.5  # and the pixels on screen changed


def test_demo_report_renders_in_the_browser(browser, tmp_path):
    from calcil.__main__ import demo

    figures = demo(size=64, iterations=20, out=tmp_path / "demo", progress=False)
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(figures["report"].as_uri())
    page.wait_for_selector(".main-svg")
    n_plots = page.evaluate("() => document.querySelectorAll('.js-plotly-plot').length")
    shot = _image(page.screenshot(full_page=True))
    page.close()

    assert n_plots == 2  # the images side by side and the loss history
    grey = shot.mean(axis=2)
    assert grey.std() > 10  # not a blank page
    assert len(np.unique(shot.reshape(-1, 3), axis=0)) > 100  # images, not just text
