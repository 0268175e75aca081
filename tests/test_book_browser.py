"""The built book as a reader sees it: every page opened in headless Chromium.

For the intro and every page listed in ``_toc.yml`` this takes a screenshot and inspects the rendered DOM:

- math was typeset by MathJax (served from the book's own ``_static/mathjax/``, never a CDN): every
  Sphinx math element holds an ``mjx-container``, MathJax reported no errors, and no raw ``$$`` or
  ``$\\command ...$`` is left in the visible text;
- images are present (at least one per image output of the chapter's notebook) and *loaded*;
- readable at a glance, at desktop width (a 1300 px window): every figure is shown at 90% or more of the width
  it was drawn at (its PNG's pixels at the page's devicePixelRatio; a figure drawn wider than the column is
  scaled down and its text shrinks), and no output block (``.cell_output`` children, their ``pre``, tables)
  is wider than its box (a horizontal scroll bar) or reaches past the content column;
- and every page at a phone's width (390 px): a screenshot; the page does not scroll sideways
  (``document.documentElement.scrollWidth <= clientWidth``); every display equation, inline formula and code block
  wider than the column scrolls inside a box of its own that lies in the viewport (never cut off, never widening
  the page); every figure fits the viewport whole.

How "loaded" is seen: Chromium's ``--dump-dom`` only serializes the DOM, so a small harness page (written
to a temporary folder) shows the chapter in a full-window iframe, waits for MathJax and for every image,
and writes what it found (each image's ``complete`` and ``naturalWidth``, the MathJax counts, the visible
text) as JSON into its own DOM, which ``--dump-dom`` then prints. ``--allow-file-access-from-files`` lets
the harness read the iframe's ``file://`` document. ``test_harness_detects_broken_pages`` checks that
this detector does fail on a page with a broken image and untypeset math, and
``test_harness_detects_overflowing_pages`` that the layout check fails on a scaled-down figure and a text
output wider than the column, and the phone check on a page that scrolls sideways, a formula cut off and code
that sticks out.

The interactive figures (``bnlab.plots.interactive``, plotly) are checked on the pages whose notebook holds one,
at desktop and phone width, through a second harness (``INTERACTIVE_HARNESS``): plotly.js was loaded once, from the
book's own ``_static/plotly/`` (no CDN), and drew every figure (``.main-svg``; a WebGL canvas for a 3-D one), a click
on a legend entry hides a trace, and the mouse over a 2-D plot brings up a hover label with its values.

If ``_build/html/index.html`` is missing the book is built first (``scripts/build_book.sh``). The tests
skip only when no Chromium is installed (``apt-get install -y chromium``); set ``BNLAB_CHROMIUM`` to use
another Chromium-based browser.
"""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import zlib
import struct
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML_DIR = ROOT / "_build" / "html"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         "--hide-scrollbars", "--mute-audio", "--allow-file-access-from-files")
WINDOW = (1300, 900)            # a desktop browser window (the book's default theme, sidebar shown)
PHONE = (390, 844)              # a phone held upright (CSS px of an iPhone 12 to 15)
MIN_SHOWN = 0.9                 # a figure is shown at no less than 90% of the width it was drawn at
VIRTUAL_TIME_MS = 30_000        # virtual time: the page's timers run fast, so this costs seconds, not 30 s
REPORT_RE = re.compile(r'<pre id="bnlab-report">(.*?)</pre>', re.S)

# The harnesses share their head: the page under test fills the window (so the screenshot is the page as a reader sees it);
# the report stays hidden. The frame is given the window's width explicitly: headless Chromium lays a window out
# no narrower than 500 px whatever --window-size says (the screenshot is cropped to the size asked for), so a
# phone's 390 px exist only as the width of the frame, which is the page's viewport. Waits are in virtual time, bounded so a broken page cannot hang the test.
HARNESS_HEAD = """<!doctype html>
<html><head><meta charset="utf-8"><style>
html, body { margin: 0; height: 100%; overflow: hidden; }
#page { position: fixed; top: 0; left: 0; width: __WIDTH__px; height: 100%; border: 0; }
#bnlab-report { display: none; }
</style></head><body>
<pre id="bnlab-report">PENDING</pre>
<iframe id="page" src="__URL__"></iframe>
<script>
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
const frame = document.getElementById("page");
const out = document.getElementById("bnlab-report");
"""
HARNESS = HARNESS_HEAD + """frame.addEventListener("load", async () => {
  try {
    const win = frame.contentWindow, doc = frame.contentDocument;
    const mathNodes = [...doc.querySelectorAll(".math")];
    const scripts = [...doc.scripts].map(s => s.src).filter(src => /mathjax/i.test(src));
    let mathjax = "not loaded";
    if (scripts.length) {
      for (let i = 0; i < 400 && !(win.MathJax && win.MathJax.startup && win.MathJax.startup.promise); i++)
        await sleep(50);
      if (win.MathJax && win.MathJax.startup && win.MathJax.startup.promise) {
        await win.MathJax.startup.promise;
        mathjax = win.MathJax.version || "unknown version";
      }
    }
    const images = [...doc.images];
    images.forEach(img => { img.loading = "eager"; });     // lazy images below the fold load too
    for (let i = 0; i < 400 && images.some(img => !img.complete); i++) await sleep(50);
    // The content column, and every output block in it: an output's own boxes and the text/table boxes inside.
    const column = doc.querySelector("article.bd-article") || doc.querySelector("article");
    const blocks = [...doc.querySelectorAll(".cell_output > *, .cell_output pre, .cell_output table, " +
                                            ".cell_output .highlight, .cell_output .output")];
    const pad = (el, side) => parseFloat(win.getComputedStyle(el)["padding" + side]) || 0;
    const describe = el => el.tagName.toLowerCase() + (el.getAttribute("class") ? "." + el.getAttribute("class").split(" ")[0] : "")
                           + ": " + el.textContent.trim().slice(0, 60);
    // The nearest box (the element or an ancestor) that clips its content sideways (overflow-x other than
    // visible: it scrolls if auto or scroll, it cuts off if hidden or clip), or null.
    const clipper = el => {
      for (let e = el; e && e !== doc.body && e !== doc.documentElement; e = e.parentElement)
        if (win.getComputedStyle(e).overflowX !== "visible") return e;
      return null;
    };
    // Display math, inline math (the visible formula, mjx-math: MathJax's hidden copy for screen readers,
    // mjx-assistive-mml, is no part of what a reader sees) and code blocks (pre: their text's full width).
    const kind = el => el.tagName === "PRE" ? "code" :
      el.closest('mjx-container[display="true"]') ? "display math" : "inline math";
    const text = doc.body.cloneNode(true);
    text.querySelectorAll("script, style, noscript, template, pre, code, textarea, mjx-assistive-mml")
        .forEach(el => el.remove());
    out.textContent = JSON.stringify({
      title: doc.title,
      mathjax: mathjax,
      mathjax_scripts: scripts,
      math_nodes: mathNodes.length,
      untypeset: mathNodes.filter(el => !el.querySelector("mjx-container"))
                          .map(el => el.textContent.trim().slice(0, 80)),
      mjx_containers: doc.querySelectorAll("mjx-container").length,
      mjx_errors: [...doc.querySelectorAll("mjx-merror")].map(el => el.textContent.slice(0, 80)),
      images: images.map(img => ({src: img.getAttribute("src"), complete: img.complete,
                                  width: img.naturalWidth, height: img.naturalHeight,
                                  in_article: !!img.closest("article"),
                                  shown: img.getBoundingClientRect().width,
                                  left: img.getBoundingClientRect().left,
                                  right: img.getBoundingClientRect().right})),
      dpr: win.devicePixelRatio || 1,
      viewport: win.innerWidth,
      column: column ? column.clientWidth - pad(column, "Left") - pad(column, "Right") : null,
      column_right: column ? column.getBoundingClientRect().right - pad(column, "Right") : null,
      blocks: blocks.map(el => ({what: describe(el), scroll: el.scrollWidth, client: el.clientWidth,
                                 width: el.getBoundingClientRect().width,
                                 right: el.getBoundingClientRect().right})),
      text: text.textContent,
      // Page-level horizontal scroll, and what sticks out past the viewport's right edge with no box of its own
      // that clips it (the outermost such element of each branch; position: fixed ones do not widen the page).
      doc_scroll: doc.documentElement.scrollWidth,
      doc_client: doc.documentElement.clientWidth,
      sticking_out: [...doc.body.querySelectorAll("*")].filter(el => {
        const r = el.getBoundingClientRect(), width = doc.documentElement.clientWidth;
        return r.width > 0 && r.right > width + 1 && win.getComputedStyle(el).position !== "fixed"
               && !clipper(el.parentElement) && !(el.parentElement.getBoundingClientRect().right > width + 1);
      }).slice(0, 10).map(el => ({what: describe(el),
                                  past: el.getBoundingClientRect().right - doc.documentElement.clientWidth})),
      // Each formula and code block: where its content lies, and the box that clips or scrolls it (if any).
      wide: [...doc.querySelectorAll("mjx-math, pre")].map(el => {
        const r = el.getBoundingClientRect(), box = clipper(el), b = box && box.getBoundingClientRect();
        return {what: describe(el.closest("mjx-container") || el), kind: kind(el), left: r.left,
                right: el.tagName === "PRE" ? r.left + el.scrollWidth : r.right,
                box: box && describe(box), box_overflow: box && win.getComputedStyle(box).overflowX,
                box_left: b && b.left + box.clientLeft, box_right: b && b.left + box.clientLeft + box.clientWidth};
      }),
    });
  } catch (err) {
    out.textContent = JSON.stringify({error: String(err)});
  }
});
</script></body></html>
"""

# The interactive figures' harness: waits for plotly.js and for every graph div to be drawn, then clicks the first
# legend entry of each (mousedown and mouseup on its toggle, which plotly's drag element counts as a click; plotly
# waits its double-click delay before acting on it) and moves the mouse onto a point of a 2-D plot (its drag layer,
# .nsewdrag, is what listens), and reports each graph's trace visibility before and after, and the hover label.
INTERACTIVE_HARNESS = HARNESS_HEAD + """const visibility = gd => (gd._fullData || []).map(t => String(t.visible));
const mouse = (el, type, x, y) => el.dispatchEvent(new MouseEvent(type, {bubbles: true, cancelable: true,
  view: el.ownerDocument.defaultView, clientX: x, clientY: y, button: 0, buttons: type === "mouseup" ? 0 : 1}));
async function hover(gd, win) {
  const drag = gd.querySelector(".nsewdrag");
  const layout = gd._fullLayout;
  const trace = (gd._fullData || []).find(t => t.visible === true && t.xaxis === "x" && t.yaxis === "y");
  if (!drag || !trace) return null;
  const points = gd.calcdata[trace.index].filter(p => isFinite(p.y));
  const p = points[Math.floor(points.length / 2)], r = drag.getBoundingClientRect();
  const x = r.left + layout.xaxis.c2p(p.x), y = r.top + layout.yaxis.c2p(p.y);
  mouse(drag, "mousemove", x, y);
  for (let i = 0; i < 40 && !gd.querySelector(".hoverlayer .hovertext"); i++) await sleep(50);
  return [...gd.querySelectorAll(".hoverlayer .hovertext")].map(el => el.textContent);
}
frame.addEventListener("load", async () => {
  try {
    const win = frame.contentWindow, doc = frame.contentDocument;
    for (let i = 0; i < 400 && !win.Plotly; i++) await sleep(50);
    const graphs = [...doc.querySelectorAll(".plotly-graph-div")];
    for (let i = 0; i < 400 && graphs.some(gd => !gd.querySelector(".main-svg")); i++) await sleep(50);
    const report = {plotly: win.Plotly ? win.Plotly.version : null, viewport: win.innerWidth,
                    plotly_scripts: [...doc.scripts].map(s => s.src).filter(src => /plotly/i.test(src)), graphs: []};
    for (const gd of graphs) {
      const g = {id: gd.id, drawn: !!gd.querySelector(".main-svg"), traces: visibility(gd).length,
                 three_d: !!(gd._fullLayout && gd._fullLayout.scene), gl: !!gd.querySelector(".gl-container canvas"),
                 no_webgl: /WebGL is not supported/i.test(gd.textContent), text: gd.textContent.slice(0, 200),
                 left: gd.getBoundingClientRect().left, right: gd.getBoundingClientRect().right,
                 legend_entries: gd.querySelectorAll(".legend .traces").length, visible_before: visibility(gd)};
      const toggle = gd.querySelector(".legend .traces .legendtoggle");
      if (toggle) {
        const r = toggle.getBoundingClientRect();
        mouse(toggle, "mousedown", r.left + r.width / 2, r.top + r.height / 2);
        mouse(toggle, "mouseup", r.left + r.width / 2, r.top + r.height / 2);
        await sleep(1000);
      }
      g.visible_after = visibility(gd);
      g.hover = await hover(gd, win);
      report.graphs.push(g);
    }
    out.textContent = JSON.stringify(report);
  } catch (err) {
    out.textContent = JSON.stringify({error: String(err)});
  }
});
</script></body></html>
"""
# Software WebGL for the 3-D figures: headless Chromium without a GPU needs it named (the implicit fallback is going)
WEBGL_FLAGS = ("--enable-unsafe-swiftshader", "--use-angle=swiftshader")

# Raw TeX that MathJax would have replaced: $$ anywhere, or $...$ holding a TeX command.
RAW_DISPLAY = re.compile(r"\$\$")
RAW_INLINE = re.compile(r"\$[^$\n]{0,200}?\\[A-Za-z]+[^$\n]{0,200}?\$")


# ---- helpers -----------------------------------------------------------------------------------
def find_browser() -> str | None:
    explicit = os.environ.get("BNLAB_CHROMIUM")
    if explicit:
        return shutil.which(explicit) or (explicit if Path(explicit).is_file() else None)
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def toc_pages() -> list[str]:
    """The root page and every file of ``_toc.yml``, in reading order (without suffix)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                yield entry["file"]
            yield from walk(entry.get("sections"))

    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += list(walk(part.get("chapters")))
    files += list(walk(toc.get("chapters")))
    return [re.sub(r"\.(md|ipynb)$", "", f) for f in files]


def source_of(page: str) -> Path | None:
    for suffix in (".ipynb", ".md"):
        if (ROOT / f"{page}{suffix}").exists():
            return ROOT / f"{page}{suffix}"
    return None


def expected_images(page: str) -> int:
    """How many images the page must show: one per image output of its notebook (0 for markdown)."""
    src = source_of(page)
    if src is None or src.suffix != ".ipynb":
        return 0
    nb = json.loads(src.read_text())
    return sum(1 for cell in nb.get("cells", []) if cell.get("cell_type") == "code"
               for output in cell.get("outputs", [])
               if any(k.startswith("image/") for k in output.get("data", {})))


def interactive_figures(page: str) -> int:
    """How many interactive (plotly) figures the page shows: one per such output of its notebook."""
    src = source_of(page)
    if src is None or src.suffix != ".ipynb":
        return 0
    nb = json.loads(src.read_text())
    return sum(1 for cell in nb.get("cells", []) if cell.get("cell_type") == "code"
               for output in cell.get("outputs", []) if "plotly-graph-div" in "".join(output.get("data", {}).get("text/html", "")))


def open_page(browser: str, url: str, workdir: Path, screenshot: Path | None = None,
              window: tuple[int, int] = WINDOW, harness_html: str = HARNESS, flags: tuple = ()) -> dict:
    """Load ``url`` through the harness in headless Chromium (a ``window`` of width x height CSS px); return
    the harness report. ``harness_html``: another harness (:data:`INTERACTIVE_HARNESS`); ``flags``: more flags."""
    workdir.mkdir(parents=True, exist_ok=True)
    harness = workdir / "harness.html"
    harness.write_text(harness_html.replace("__URL__", html.escape(url, quote=True)).replace("__WIDTH__", str(window[0])))
    cmd = [browser, *FLAGS, *flags, f"--user-data-dir={workdir / 'profile'}", f"--window-size={window[0]},{window[1]}",
           f"--virtual-time-budget={VIRTUAL_TIME_MS}", "--dump-dom"]
    if screenshot is not None:
        cmd.append(f"--screenshot={screenshot}")
    cmd.append(harness.as_uri())
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=workdir)
    match = REPORT_RE.search(proc.stdout)
    if proc.returncode != 0 or match is None:
        raise AssertionError(f"Chromium gave no report for {url} (exit {proc.returncode}):\n"
                             f"{proc.stderr[-2000:]}\n{proc.stdout[-1000:]}")
    body = html.unescape(match.group(1))
    if body == "PENDING":
        raise AssertionError(f"the page {url} did not finish loading within {VIRTUAL_TIME_MS} ms of virtual time")
    report = json.loads(body)
    if "error" in report:
        raise AssertionError(f"the harness failed on {url}: {report['error']}")
    return report


def problems(report: dict, min_images: int = 0) -> list[str]:
    """What a reader would see wrong on the page (an empty list means the page is fine)."""
    found = []
    if report["math_nodes"]:
        if report["mathjax"] == "not loaded":
            found.append(f"{report['math_nodes']} math elements but MathJax never ran "
                         f"(scripts: {report['mathjax_scripts'] or 'none'})")
        if report["untypeset"]:
            found.append(f"{len(report['untypeset'])} math elements not typeset, e.g. {report['untypeset'][:3]}")
    remote = [s for s in report["mathjax_scripts"] if not s.startswith("file:")]
    if remote:
        found.append(f"MathJax loaded from outside the book: {remote}")
    if report["mjx_errors"]:
        found.append(f"MathJax errors: {report['mjx_errors'][:3]}")
    text = report["text"]
    raw = RAW_DISPLAY.findall(text) + RAW_INLINE.findall(text)
    if raw:
        found.append(f"raw TeX left in the text: {[r[:60] for r in raw[:3]]}")
    images = report["images"]
    broken = [img["src"] for img in images if not (img["complete"] and img["width"] > 0)]
    if broken:
        found.append(f"images that did not load: {broken}")
    shown = [img for img in images if img["in_article"]]
    if len(shown) < min_images:
        found.append(f"{len(shown)} images in the page body, but its notebook has {min_images} image outputs")
    return found


def layout_problems(report: dict) -> list[str]:
    """What makes the page hard to read at a glance (an empty list means every output fits the column):

    - a figure shown narrower than ``MIN_SHOWN`` of the width it was drawn at (its PNG's pixel width, in CSS px
      at the page's devicePixelRatio): it was drawn wider than the column and scaled down, so its text shrank;
    - an output block (stream text, table, HTML) whose content is wider than its box (a horizontal scroll
      bar hides the rest) or that reaches past the content column's right edge."""
    found = []
    for img in report["images"]:
        if not img["in_article"] or not img["width"]:
            continue
        drawn = img["width"] / report["dpr"]
        if img["shown"] < MIN_SHOWN * drawn - 0.5:
            found.append(f"image {img['src']} drawn {drawn:.0f} px wide but shown at {img['shown']:.0f} px "
                         f"({img['shown'] / drawn:.0%})")
    right = report["column_right"]
    for block in report["blocks"]:
        if block["scroll"] > block["client"] + 1:
            found.append(f"output block overflows ({block['scroll']} px of content in {block['client']} px): "
                         f"{block['what']!r}")
        elif right is not None and block["right"] > right + 1:
            found.append(f"output block reaches {block['right'] - right:.0f} px past the column: {block['what']!r}")
    return found


def phone_problems(report: dict) -> list[str]:
    """Figures that do not fit whole into a phone's viewport."""
    return [f"image {img['src']} spans {img['left']:.0f}..{img['right']:.0f} px, the viewport is "
            f"{report['viewport']} px wide" for img in report["images"]
            if img["in_article"] and (img["left"] < -0.5 or img["right"] > report["viewport"] + 0.5)]


def phone_layout_problems(report: dict) -> list[str]:
    """What makes a page hard to read on a phone, beyond its figures (:func:`phone_problems`):

    - the page itself scrolls sideways (``document.documentElement.scrollWidth`` over its ``clientWidth``); the
      elements that stick out past the viewport's right edge are named;
    - a display equation, inline formula or code block wider than the box it sits in, unless that box scrolls it
      sideways (``overflow-x: auto`` or ``scroll``) and lies inside the viewport: cut off by a box that does
      not scroll (``hidden``, ``clip``), or sticking out past the viewport with no box at all."""
    found = []
    width = report["doc_client"]
    if report["doc_scroll"] > width:
        found.append(f"the page scrolls sideways: {report['doc_scroll']} px of content in a {width} px viewport "
                     f"({report['doc_scroll'] - width} px too wide); sticking out: "
                     + "; ".join(f"{s['what']!r} by {s['past']:.0f} px" for s in report["sticking_out"]))
    for w in report["wide"]:
        left, right = (w["box_left"], w["box_right"]) if w["box"] is not None else (0, width)
        past = max(left - w["left"], w["right"] - right)
        if past <= 1:
            continue                                    # fits its box (or, without one, the viewport)
        what = f"{w['kind']} {w['what'][:70]!r} ({w['right'] - w['left']:.0f} px wide)"
        if w["box"] is None:
            found.append(f"{what} reaches {past:.0f} px past the viewport, with no box to scroll it")
        elif w["box_overflow"] not in ("auto", "scroll"):
            found.append(f"{what} is cut off by {past:.0f} px: its box {w['box'][:40]!r} has overflow-x "
                         f"{w['box_overflow']}, not auto")
        elif w["box_left"] < -0.5 or w["box_right"] > width + 0.5:
            found.append(f"{what} scrolls in {w['box'][:40]!r}, which spans {w['box_left']:.0f}.."
                         f"{w['box_right']:.0f} px of the {width} px viewport")
    return found


def check_screenshot(path: Path, window: tuple[int, int] = WINDOW) -> None:
    assert path.is_file(), f"no screenshot written at {path}"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == window, f"{path} is {width}x{height}, expected {window}"
    assert len(data) > 10_000, f"{path} is only {len(data)} bytes: a blank page?"
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as img:
        colors = img.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colors is None or len(colors) > 16, f"{path} has only {len(colors)} colours: a blank page?"


def tiny_png(width: int = 4, height: int = 3) -> bytes:
    """A valid red RGB PNG, written without any image library."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# ---- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser() -> str:
    path = find_browser()
    if path is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium), so the built book cannot be "
                    "checked in a browser; set BNLAB_CHROMIUM to use another Chromium-based browser")
    return path


@pytest.fixture(scope="session")
def book(browser) -> Path:
    """The built HTML book; built with scripts/build_book.sh if ``_build/html/index.html`` is missing."""
    if not (HTML_DIR / "index.html").exists():
        proc = subprocess.run(["bash", str(ROOT / "scripts" / "build_book.sh")], cwd=ROOT, capture_output=True,
                              text=True, timeout=1800)
        if proc.returncode != 0:
            pytest.fail(f"scripts/build_book.sh failed (exit {proc.returncode}):\n"
                        f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    assert (HTML_DIR / "index.html").exists(), "the build wrote no _build/html/index.html"
    return HTML_DIR


# ---- tests -------------------------------------------------------------------------------------
def test_harness_detects_broken_pages(browser, tmp_path):
    """The detector itself: a broken image and untypeset TeX are reported, a clean page is not."""
    (tmp_path / "good.png").write_bytes(tiny_png())
    (tmp_path / "broken.html").write_text(
        '<!doctype html><html><head><title>broken</title></head><body><article>'
        '<img src="good.png"><img src="missing.png">'
        '<p>raw display math: $$x^2$$ and inline $\\alpha + 1$</p>'
        '<span class="math notranslate nohighlight">\\(x\\)</span>'
        '</article></body></html>')
    (tmp_path / "clean.html").write_text(
        '<!doctype html><html><head><title>clean</title></head><body><article><img src="good.png">'
        '<p>costs $5 and $6</p><pre>$$ in code is fine $$</pre></article></body></html>')

    report = open_page(browser, (tmp_path / "broken.html").as_uri(), tmp_path / "broken")
    images = {img["src"]: img for img in report["images"]}
    assert images["good.png"]["complete"] and images["good.png"]["width"] == 4
    assert images["missing.png"]["width"] == 0
    found = "\n".join(problems(report, min_images=3))
    assert "missing.png" in found and "good.png" not in found.split("images that did not load")[1].split("\n")[0]
    assert "raw TeX" in found and "$$" in found and "alpha" in found
    assert "MathJax never ran" in found
    assert "image outputs" in found

    clean = open_page(browser, (tmp_path / "clean.html").as_uri(), tmp_path / "clean")
    assert problems(clean, min_images=1) == []


def test_harness_detects_overflowing_pages(browser, tmp_path):
    """The layout detector: a figure scaled down to fit the column and a wide text output are reported, a page
    whose outputs fit is not."""
    (tmp_path / "wide.png").write_bytes(tiny_png(1400, 30))
    (tmp_path / "fits.png").write_bytes(tiny_png(600, 30))
    style = ("<style>article { width: 700px; } img { max-width: 100%; } "
             ".cell_output pre { overflow: auto; }</style>")
    (tmp_path / "wide.html").write_text(
        f'<!doctype html><html><head><title>wide</title>{style}</head><body><article class="bd-article">'
        '<div class="cell_output"><img src="wide.png"></div>'
        '<div class="cell_output"><pre>' + "a wide table row  " * 20 + '</pre></div>'
        '</article></body></html>')
    (tmp_path / "fits.html").write_text(
        f'<!doctype html><html><head><title>fits</title>{style}</head><body><article class="bd-article">'
        '<div class="cell_output"><img src="fits.png"></div>'
        '<div class="cell_output"><pre>a short line</pre></div></article></body></html>')
    found = "\n".join(layout_problems(open_page(browser, (tmp_path / "wide.html").as_uri(), tmp_path / "wide")))
    assert "wide.png drawn 1400 px wide but shown at 700 px (50%)" in found
    assert "output block overflows" in found and "a wide table row" in found
    assert layout_problems(open_page(browser, (tmp_path / "fits.html").as_uri(), tmp_path / "fits")) == []
    phone = open_page(browser, (tmp_path / "fits.html").as_uri(), tmp_path / "phone", window=(400, 600))
    assert "fits.png spans" in "\n".join(phone_problems(phone))

    # At a phone's width: code that widens the page, a display equation and an inline formula cut off by a box
    # that does not scroll; the same page with boxes that scroll is fine. (No MathJax here: the elements it
    # writes stand in for it, sized by hand.)
    def phone_page(name, overflow):
        (tmp_path / f"{name}.html").write_text(
            '<!doctype html><html><head><meta name="viewport" content="width=device-width">'
            f'<title>{name}</title><style>body {{ margin: 0; }} pre {{ overflow-x: {overflow}; }} '
            f'mjx-container[display="true"] {{ display: block; overflow-x: {overflow}; }} '
            f'span.math {{ display: inline-flex; max-width: 100%; overflow-x: {overflow}; }} '
            'mjx-math { display: inline-block; height: 1em; }</style></head><body><article class="bd-article">'
            '<pre>' + "wide_code_line " * 40 + '</pre>'
            '<div class="math"><mjx-container display="true"><mjx-math style="width: 700px">'
            '</mjx-math></mjx-container></div>'
            '<p>text <span class="math"><mjx-container><mjx-math style="width: 500px"></mjx-math></mjx-container>'
            '</span> text</p></article></body></html>')
        return open_page(browser, (tmp_path / f"{name}.html").as_uri(), tmp_path / name, window=PHONE)

    wide = phone_page("phone_wide", "visible")
    assert wide["viewport"] == PHONE[0] and wide["doc_scroll"] > PHONE[0]
    found = "\n".join(phone_layout_problems(wide))
    assert "the page scrolls sideways" in found and "code 'pre: wide_code_line" in found
    assert "display math" in found and "inline math" in found
    clipped = phone_page("phone_clipped", "hidden")
    assert clipped["doc_scroll"] == PHONE[0]                        # nothing widens the page, but ...
    found = "\n".join(phone_layout_problems(clipped))
    assert found.count("is cut off") == 3 and "overflow-x hidden" in found       # ... all three are cut off
    assert phone_layout_problems(phone_page("phone_scrolls", "auto")) == []


def test_mathjax_is_local(book):
    """No page refers to a MathJax CDN; the local copy is part of the site."""
    assert (book / "_static" / "mathjax" / "tex-mml-chtml.js").is_file(), \
        "the built site has no _static/mathjax/; run scripts/build_book.sh (it fetches MathJax first)"
    cdn = re.compile(r"(cdn\.jsdelivr\.net|cdnjs\.cloudflare\.com|unpkg\.com)[^\"']*mathjax", re.I)
    offenders = []
    for page in book.rglob("*.html"):
        text = page.read_text(errors="replace")
        tags = re.findall(r"<script[^>]*mathjax[^>]*>", text, re.I)
        if cdn.search(text) or any("://" in tag for tag in tags):
            offenders.append(str(page.relative_to(book)))
        assert len(tags) <= 1, f"{page.relative_to(book)} loads MathJax {len(tags)} times"
    assert not offenders, f"pages loading MathJax from a CDN: {offenders}"


@pytest.mark.parametrize("page", toc_pages())
def test_page_renders(browser, book, page, tmp_path):
    """One page of the book: screenshot, typeset math, and loaded images."""
    path = book / f"{page}.html"
    assert path.is_file(), f"{page} is in _toc.yml but {path.relative_to(ROOT)} was not built"
    shot = tmp_path / (page.replace("/", "_") + ".png")
    report = open_page(browser, path.as_uri(), tmp_path, screenshot=shot)
    check_screenshot(shot)
    assert report["title"], f"{page} has no title"
    found = problems(report, min_images=expected_images(page)) + layout_problems(report)
    assert not found, f"{page}:\n  " + "\n  ".join(found)


@pytest.mark.parametrize("page", toc_pages())
def test_page_fits_a_phone(browser, book, page, tmp_path):
    """One page at a phone's width: a screenshot; no sideways scroll of the page; wide math and code scroll inside
    their own boxes; every figure fits whole into the viewport (scaled down, never cut off)."""
    shot = tmp_path / "phone.png"
    report = open_page(browser, (book / f"{page}.html").as_uri(), tmp_path, screenshot=shot, window=PHONE)
    check_screenshot(shot, PHONE)
    assert report["viewport"] == PHONE[0], f"the page was laid out {report['viewport']} px wide, not {PHONE[0]}"
    shown = [img for img in report["images"] if img["in_article"]]
    assert len(shown) >= expected_images(page)
    found = phone_layout_problems(report) + phone_problems(report)
    assert not found, f"{page} at {PHONE[0]} px:\n  " + "\n  ".join(found)


INTERACTIVE_PAGES = [page for page in toc_pages() if interactive_figures(page)] or [None]


@pytest.mark.parametrize("window", [WINDOW, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize("page", INTERACTIVE_PAGES)
def test_interactive_figures_work_offline(browser, book, page, window, tmp_path):
    """A page with interactive figures: plotly.js comes from the book's own _static/ (once, no CDN) and draws every
    figure inside the viewport; a legend click hides a trace; hovering a 2-D plot shows a label with its values."""
    if page is None:
        pytest.skip("no chapter holds an interactive figure")
    path = book / f"{page}.html"
    assert "plotly-graph-div" in path.read_text(), f"{page}'s notebook has an interactive figure, the built page " \
        "none: rebuild the book (scripts/build_book.sh)"
    assert (book / "_static" / "plotly" / "plotly.min.js").is_file(), "the built site has no _static/plotly/plotly.min.js"
    report = open_page(browser, path.as_uri(), tmp_path, window=window, harness_html=INTERACTIVE_HARNESS,
                       flags=WEBGL_FLAGS)
    assert report["plotly"], f"plotly.js never loaded on {page} (scripts: {report['plotly_scripts']})"
    scripts = [src.split("?")[0] for src in report["plotly_scripts"]]         # Sphinx may add ?v=<checksum>
    assert len(scripts) == 1 and scripts[0].startswith("file:") and scripts[0].endswith("/_static/plotly/plotly.min.js"), \
        f"plotly.js must be loaded once, from the book's own _static/plotly/: {report['plotly_scripts']}"
    assert len(report["graphs"]) == interactive_figures(page)
    for g in report["graphs"]:
        assert g["drawn"] and g["traces"], f"{g['id']} was not drawn: {g['text']!r}"
        if g["three_d"] and g["no_webgl"]:
            pytest.skip("this headless Chromium has no WebGL, so the 3-D figure cannot be checked")
        assert g["gl"] or not g["three_d"], f"{g['id']}: no WebGL canvas for the 3-D scene"
        assert -0.5 <= g["left"] and g["right"] <= report["viewport"] + 0.5, f"{g['id']} sticks out of the viewport"
        assert g["legend_entries"] > 1 and g["visible_after"] != g["visible_before"], \
            f"{g['id']}: a click on the legend changed nothing ({g['visible_before']})"
        assert g["visible_after"][0] == "legendonly" and g["visible_before"][0] == "true"
        if not g["three_d"]:
            assert g["hover"] and "step" in g["hover"][0], f"{g['id']}: no hover label ({g['hover']})"
