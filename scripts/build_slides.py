"""Offline lecture slides and a static course site from the notebooks.

    python scripts/build_slides.py slides   # make slides: build/slides/<notebook>.slides.html + index.html
    python scripts/build_slides.py site     # make site:   build/site/<notebook>.html + index.html
    options: --smoke (execute in SMOKE mode, the default for speed) / --full, --only 01_attention

Each notebook is executed first (papermill, headless, into build/executed/<mode>/, never over
the source) so figures appear, then converted with nbconvert. nbconvert's templates load
reveal.js, MathJax 2, require.js, jQuery, the widget renderer and mermaid from CDNs; a lecture
hall often has no network, so every one of them is served from build/<slides|site>/vendor/,
copied from npm packages installed once into build/vendor/ (`npm` needed at build time only),
and the templates in templates/ drop mermaid. Plotly figures carry plotly.js inline
(renderer `plotly_mimetype+notebook`); the MathJax 3 <script> plotly adds to each figure is
removed because the page already has MathJax 2.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from course_utils.paths import NOTEBOOKS_DIR, ROOT, build_root  # noqa: E402

import slide_layout  # noqa: E402  (scripts/, beside this file)

BUILD = build_root()
NPM_DIR = BUILD / "vendor"
NPM_PACKAGES = ["reveal.js@4", "mathjax@2", "jquery@3", "requirejs@2", "@jupyter-widgets/html-manager@1"]
# what each page needs, relative to node_modules/, copied into <out>/vendor/
VENDOR_FILES = {
    "reveal.js": ["dist", "plugin"],
    "mathjax": [
        "MathJax.js",
        "config",
        "extensions",
        "jax/input/TeX",
        "jax/output/CommonHTML",
        "jax/element",
        "fonts/HTML-CSS/TeX/woff",
        "localization/en",
    ],
    "jquery": ["dist/jquery.min.js"],
    "requirejs": ["require.js"],
    "@jupyter-widgets/html-manager": ["dist"],
}
EXTERNAL_MATHJAX = re.compile(r'<script[^>]*src="https?://[^"]*mathjax[^"]*"[^>]*>\s*</script>', re.I)
EXTERNAL_LOAD = re.compile(r'<(?:script|link|img)\b[^>]*(?:src|href)="(https?://[^"]+)"', re.I)


def ensure_npm_packages() -> Path:
    """Install the front-end packages into build/vendor/ once (from the npm registry)."""
    modules = NPM_DIR / "node_modules"
    if all((modules / p.rsplit("@", 1)[0]).exists() for p in NPM_PACKAGES):
        return modules
    if shutil.which("npm") is None:
        sys.exit(
            "npm is needed once to fetch reveal.js, MathJax 2, jQuery, require.js and the widget renderer "
            "for offline slides: install Node.js (https://nodejs.org or `apt-get install npm`), then rerun."
        )
    NPM_DIR.mkdir(parents=True, exist_ok=True)
    print("installing front-end packages into build/vendor/ (once) ...", flush=True)
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", str(NPM_DIR), *NPM_PACKAGES],
        check=True,
    )
    return modules


def copy_vendor(out: Path) -> Path:
    modules = ensure_npm_packages()
    vendor = out / "vendor"
    for package, parts in VENDOR_FILES.items():
        for part in parts:
            src, dst = modules / package / part, vendor / package / part
            if dst.exists():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if src.is_dir() else shutil.copyfile)(src, dst)
    return vendor


def execute(notebook: Path, smoke: bool) -> Path:
    """Run the notebook headless into build/executed/<smoke|full>/ unless that copy is newer than the source."""
    import papermill as pm

    out = BUILD / "executed" / ("smoke" if smoke else "full") / notebook.name
    if out.exists() and out.stat().st_mtime > notebook.stat().st_mtime:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    os.environ.update(COURSE_HEADLESS="1", COURSE_SMOKE="1" if smoke else "0")
    print(f"executing {notebook.name} ({'SMOKE' if smoke else 'full'}) ...", flush=True)
    pm.execute_notebook(
        str(notebook),
        str(out),
        parameters={"SMOKE": smoke},
        kernel_name="python3",
        cwd=str(notebook.parent),
        progress_bar=False,
    )
    return out


def notebooks(folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The notebooks to present, in order: notebooks/NN_*.ipynb, never the percent scripts paired with them."""
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def _exporter(kind: str):
    from nbconvert import HTMLExporter, SlidesExporter
    from traitlets.config import Config

    c = Config()
    cls, template = (SlidesExporter, "course_reveal") if kind == "slides" else (HTMLExporter, "course_lab")
    name = cls.__name__
    c[name].template_name = template
    c[name].extra_template_basedirs = [str(ROOT / "templates")]
    c[name].mathjax_url = "vendor/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"
    c[name].require_js_url = "vendor/requirejs/require.js"
    c[name].jquery_url = "vendor/jquery/dist/jquery.min.js"
    c[name].widget_renderer_url = "vendor/@jupyter-widgets/html-manager/dist/embed-amd.js"
    if kind == "slides":
        c[name].reveal_url_prefix = "vendor/reveal.js"
        c[name].reveal_theme = "white"  # others load web fonts
        c[name].reveal_scroll = False  # the template fits each slide instead (templates/course_reveal)
        c.TagRemovePreprocessor.enabled = True
        c.TagRemovePreprocessor.remove_input_tags = {slide_layout.OUTPUTS_ONLY}  # outputs continued on a sub-slide
    return cls(config=c)


def convert(executed: Path, kind: str, out: Path) -> Path:
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    if kind == "slides":
        nb = slide_layout.fit_to_slides(nb)  # cut into slides that fit the screen (the file is not changed)
    body, _ = _exporter(kind).from_notebook_node(nb, resources={"metadata": {"name": executed.stem}})
    body = EXTERNAL_MATHJAX.sub("", body)
    external = sorted(set(EXTERNAL_LOAD.findall(body)))
    if external:
        raise RuntimeError(f"{executed.name}: the page would still load from the network: {external[:5]}")
    target = out / (executed.stem + (".slides.html" if kind == "slides" else ".html"))
    target.write_text(body, encoding="utf-8")
    return target


def write_index(out: Path, pages: list[Path], kind: str) -> Path:
    title = "Transformers from scratch: " + ("slides" if kind == "slides" else "notebooks")
    items = "\n".join(
        f'<li><a href="{html.escape(p.name)}">{html.escape(p.stem.split(".")[0].replace("_", " "))}</a></li>'
        for p in pages
    )
    index = out / "index.html"
    index.write_text(
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body><h1>{title}</h1>\n<ul>\n{items}\n</ul>\n"
        "<p>Works offline: open this file, or serve the folder with "
        "<code>python -m http.server</code>.</p></body></html>\n",
        encoding="utf-8",
    )
    return index


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["slides", "site"])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--full", action="store_true", help="execute in full mode (slow) instead of SMOKE")
    mode.add_argument("--smoke", action="store_true", help="execute in SMOKE mode (default)")
    parser.add_argument("--only", nargs="*", help="notebook stems, e.g. 01_attention")
    args = parser.parse_args(argv)
    chosen = notebooks()
    if args.only:
        chosen = [n for n in chosen if n.stem in args.only]
        if not chosen:
            parser.error(f"no notebook named {args.only}")
    out = BUILD / args.kind
    out.mkdir(parents=True, exist_ok=True)
    copy_vendor(out)
    pages = [convert(execute(nb, smoke=not args.full), args.kind, out) for nb in chosen]
    index = write_index(out, pages, args.kind)
    print(
        f"{len(pages)} {'decks' if args.kind == 'slides' else 'pages'} in {out.relative_to(ROOT)}/; open {index.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
