"""In a real browser (headless Chromium, driven by Playwright): the offline slide decks, and JupyterLab.

Skipped with a message when Chromium or Playwright is missing; `.ci/run` installs both.
The file name sorts after test_notebooks.py on purpose: the decks reuse the notebooks it
executed (build/executed/smoke/) instead of running them again.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
from notebook_runner import NOTEBOOKS, ROOT

from course_utils.paths import build_root

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover
    sync_playwright = None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.notebook,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() or sync_playwright is None,
        reason="needs Debian's chromium (apt-get install chromium) and the playwright package; .ci/run installs both",
    ),
]
SHOTS = build_root() / "screenshots"
CHROME_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def _local(url: str) -> bool:
    host = urlparse(url).hostname
    return url.startswith(("data:", "blob:", "about:", "file:")) or host in ("127.0.0.1", "localhost", "::1")


@contextlib.contextmanager
def browser_page(width: int = 1280, height: int = 900):
    """A Chromium page that refuses (and records) every request leaving localhost."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.external = []

        def guard(route):
            if _local(route.request.url):
                route.continue_()
            else:
                page.external.append(route.request.url)
                route.abort()

        page.route("**/*", guard)
        try:
            yield page
        finally:
            browser.close()


@contextlib.contextmanager
def serve(directory: Path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # one line per request would bury the test's own output
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def decks():
    result = subprocess.run(
        ["python", str(ROOT / "scripts" / "build_slides.py"), "slides"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return build_root() / "slides"


def test_index_links_every_deck(decks):
    index = (decks / "index.html").read_text()
    for nb in NOTEBOOKS:
        assert f'href="{nb.stem}.slides.html"' in index


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_deck_renders_offline_with_math_and_navigation(decks, nb):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with serve(decks) as base, browser_page() as page:
        page.goto(f"{base}/{nb.stem}.slides.html", wait_until="load")
        page.wait_for_selector(".reveal .slides section", timeout=30_000)
        has_math = "$" in nb.read_text()
        if has_math:  # MathJax 2 (CommonHTML output) typeset formulas and finished its queue
            page.wait_for_function(
                "document.querySelectorAll('.MathJax_CHTML').length > 0 && window.MathJax"
                " && MathJax.Hub.queue.pending === 0 && !MathJax.Hub.queue.running",
                timeout=60_000,
            )
        first = page.evaluate("location.hash")
        page.keyboard.press("ArrowRight")
        page.wait_for_function(f"location.hash !== {json.dumps(first)}", timeout=10_000)
        page.wait_for_timeout(1200)  # let the slide transition finish before the screenshot
        page.screenshot(path=str(SHOTS / f"{nb.stem}.slides.png"))
        assert page.external == [], f"the deck tried to load from the network: {page.external[:5]}"


FIT = """slide => {
    const config = Reveal.getConfig(), zoom = parseFloat(slide.style.zoom || "1");
    const scrolls = getComputedStyle(slide).overflowY === "auto";
    return {
        need: parseFloat(slide.dataset.fitZoom || "NaN"), zoom, scrolls,
        // the slide's own CSS pixels: with zoom z, config.height / z of them are on screen
        cut: !scrolls && (slide.scrollHeight > config.height / zoom + 2 || slide.scrollWidth > config.width / zoom + 2),
        title: (slide.querySelector("h1, h2, h3") || slide).innerText.trim().slice(0, 60),
    };
}"""


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_every_slide_fits_at_1280x720(decks, nb):
    """Visit every slide at a projector's 1280x720: each must fit; write a contact sheet of them all.

    scripts/slide_layout.py cuts the notebook into slides by estimated height; the deck's template
    shrinks a slide the estimate got a little wrong (CSS zoom, down to 0.8) and would let one that
    is much too big scroll. A slide that scrolls or is cut off fails here; build/slides-check/
    holds <deck>.contact.jpg (every slide, for a person to look at) and <deck>.json (each slide's fit).
    """
    import figures

    out = build_root() / "slides-check" / nb.stem
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("slide*.*"):
        old.unlink()
    with serve(decks) as base, browser_page(1280, 720) as page:
        page.goto(f"{base}/{nb.stem}.slides.html", wait_until="load")
        page.wait_for_selector(".reveal .slides section", timeout=30_000)
        page.wait_for_function("typeof window.courseFitSlide === 'function'", timeout=30_000)
        page.evaluate(
            "require(['vendor/reveal.js/dist/reveal.js'], R => { window.Reveal = R; R.configure({transition: 'none'}); })"
        )
        page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=30_000)
        n = page.evaluate("Reveal.getTotalSlides()")
        report, shots = [], []
        for i in range(n):
            page.evaluate(
                f"(() => {{ const s = Reveal.getSlides()[{i}], ix = Reveal.getIndices(s); Reveal.slide(ix.h, ix.v || 0, 99); }})()"
            )
            row = page.evaluate(
                f"(() => {{ const s = Reveal.getCurrentSlide(); courseFitSlide(s); return ({FIT})(s); }})()"
            )
            report.append({"slide": i, **row})
            shot = out / f"slide{i:03d}.jpg"  # JPEG: a contact sheet's worth, at a fifth of PNG's time
            page.screenshot(path=str(shot), type="jpeg", quality=70)
            shots.append(shot)
        assert page.external == [], f"the deck tried to load from the network: {page.external[:5]}"
    figures.contact_sheet(shots, out.with_suffix(".contact.jpg"), f"{nb.stem}: {n} slides at 1280x720", columns=6)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    assert all(r["need"] == r["need"] for r in report), f"{nb.stem}: the fit script did not run on every slide"
    bad = [(r["slide"], r["title"], round(r["need"], 2)) for r in report if r["cut"] or r["scrolls"]]
    assert not bad, (
        f"{nb.stem}: slides too big for the screen even shrunk to 0.8 (slide, heading, zoom it would need): {bad}; "
        "cut the cell in the notebook, or correct scripts/slide_layout.py's estimate"
    )
    print(f"{nb.stem}: {n} slides, {sum(r['zoom'] < 1 for r in report)} shrunk")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def present_live_with_a_working_slider(page):
    """Start jupyterlab-deck on the running notebook at the slider's slide, move the slider, see the figure change.

    This is the README's way to present live: the deck is the notebook itself, so the
    kernel, ipywidgets 8 and plotly keep working on every slide.
    """
    slider = page.locator(".jp-OutputArea-child .widget-slider").first
    # the deck opens on the active cell: start on the widget's slide, as a presenter picks where to begin
    slider.locator("xpath=ancestor::div[contains(@class,'jp-CodeCell')]").locator(".jp-InputPrompt").first.click()
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Shift+C")  # the command palette, as an instructor would open it
    page.keyboard.type("Start Deck")
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-jp-deck-mode='presenting']", state="attached", timeout=20_000)
    # jupyterlab-deck 0.2 lays a slide out fully only once it is navigated to: one step on and back
    page.keyboard.press("Space")
    page.wait_for_timeout(800)
    page.keyboard.press("Shift+Space")
    page.wait_for_timeout(1500)
    where = slider.bounding_box()
    assert where and 0 <= where["y"] <= page.viewport_size["height"] - where["height"], (
        f"the deck's slide does not show notebook 00's temperature slider on screen: {where}"
    )
    box = slider.locator("xpath=ancestor::div[contains(@class,'widget-interact')]").first.element_handle()
    src = "el => (el.querySelector('img') || {}).src || ''"
    before = box.evaluate(src)
    assert before, "the temperature widget shows no figure on its slide"
    page.screenshot(path=str(SHOTS / "deck_00_slider.png"))
    slider.locator(".noUi-handle").first.click()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    # the kernel redraws: a new figure replaces the old one inside the widget
    page.wait_for_function(f"([el, old]) => ({src})(el) && ({src})(el) !== old", arg=[box, before], timeout=30_000)
    page.screenshot(path=str(SHOTS / "deck_00_slider_moved.png"))


def test_jupyterlab_renders_widget_and_plotly(tmp_path):
    """make lab (headless) serves JupyterLab; run notebook 00 (a copy) and see a slider and a plotly figure."""
    work = tmp_path / "lab"
    (work / "notebooks").mkdir(parents=True)
    shutil.copyfile(ROOT / "notebooks" / "00_start_here.ipynb", work / "notebooks" / "00_start_here.ipynb")
    settings = tmp_path / "settings"
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    port, token = _free_port(), secrets.token_hex(8)
    env = {
        **os.environ,
        "COURSE_HEADLESS": "0",
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
    }
    args = f"--port={port} --ip=127.0.0.1 --IdentityProvider.token={token} --ServerApp.port_retries=0"
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(
        [
            "make",
            "--no-print-directory",
            "lab",
            "NO_BROWSER=1",
            f"LAB_ROOT={work}",
            f"LAB_NOTEBOOK={work / 'notebooks' / '00_start_here.ipynb'}",
            f"LAB_ARGS={args}",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=3)
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "lab.log").read_text()[-3000:]
                time.sleep(1)
        SHOTS.mkdir(parents=True, exist_ok=True)
        with browser_page() as page:
            page.goto(f"http://127.0.0.1:{port}/lab/tree/notebooks/00_start_here.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook", timeout=60_000)
            page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=90_000)
            page.click("li.lm-MenuBar-item >> text=Run")  # drive the menu like a person
            page.click("text=Run All Cells", timeout=10_000)
            slider = page.wait_for_selector(".jp-OutputArea-child .widget-slider", timeout=180_000)
            slider.scroll_into_view_if_needed()
            page.screenshot(path=str(SHOTS / "jupyterlab_00_slider.png"))
            page.wait_for_selector(".jp-OutputArea-child .js-plotly-plot", timeout=180_000)
            page.locator(".jp-OutputArea-child .js-plotly-plot").first.scroll_into_view_if_needed()
            page.screenshot(path=str(SHOTS / "jupyterlab_00.png"))
            present_live_with_a_working_slider(page)
            assert page.external == [], f"JupyterLab tried to reach the network: {page.external[:5]}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        log.close()
