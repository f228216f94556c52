"""The built documentation site, opened in a real browser (headless Chromium).

Runs on a site that is already built: set FASTXENT_DOCS_HTML to its folder
(``.ci/docs.sh`` builds it and runs this file).  Skipped without that variable,
and without Chromium unless FASTXENT_DOCS_REQUIRE_BROWSER=1 (CI), which turns a
missing browser into a failure.

The site is served over HTTP on 127.0.0.1 and each page is loaded into an
iframe of a small check page, which reports what the browser made of it: the
headings, every image and whether it loaded, and any reST markup left in the
text.  Screenshots of the checked pages go to FASTXENT_DOCS_SHOTS (default: a
``screenshots`` folder beside the site).
"""
import functools
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import urllib.parse

import pytest

SITE = os.environ.get("FASTXENT_DOCS_HTML")
REQUIRE_BROWSER = os.environ.get("FASTXENT_DOCS_REQUIRE_BROWSER") == "1"
BROWSER = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)

if not SITE:
    pytest.skip("FASTXENT_DOCS_HTML is not set: build the site first (.ci/docs.sh does both)",
                allow_module_level=True)
if BROWSER is None and not REQUIRE_BROWSER:
    pytest.skip("no headless Chromium here (apt-get install chromium)", allow_module_level=True)

SHOTS = os.environ.get("FASTXENT_DOCS_SHOTS") or os.path.join(os.path.dirname(os.path.abspath(SITE)),
                                                             "screenshots")

# What the browser made of each page, as JSON in <pre id="result">: every page of
# the list after "#" is loaded into an iframe of its own; the check page's load
# event, which Chromium's --dump-dom waits for, comes after all of theirs.
CHECK_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>render check</title></head>
<body>
<pre id="result"></pre>
<script>
const pages = JSON.parse(decodeURIComponent(location.hash.slice(1)));
const reports = {};
const texts = (doc, sel) => Array.from(doc.querySelectorAll(sel),
  e => e.textContent.replace(/[#\\u00b6]$/, "").replace(/:$/, "").replace(/\\u2019/g, "'").trim());
for (const page of pages) {
  const frame = document.createElement("iframe");
  frame.style.cssText = "width:1280px;height:20000px;border:0";
  frame.onload = () => {
    const doc = frame.contentDocument;
    const main = doc.querySelector("main") || doc.body;
    reports[page] = {
      title: doc.title,
      h1: texts(doc, "main h1"),
      h2: texts(doc, "main h2"),
      rubrics: texts(doc, "main .rubric, main dl.field-list > dt"),
      images: Array.from(doc.images, i => ({src: i.getAttribute("src"), complete: i.complete,
                                            width: i.naturalWidth})),
      text: main.innerText,
      external: Array.from(doc.querySelectorAll("script[src], link[rel=stylesheet]"),
                           e => e.src || e.href).filter(u => !u.startsWith(location.origin)),
    };
    document.getElementById("result").textContent = JSON.stringify(reports);
  };
  frame.src = page;
  document.body.appendChild(frame);
}
</script>
</body></html>
"""

# Markup that reached the page as text: docutils' error boxes, roles, directives,
# literal backticks, reST link references, and TeX that no script typeset (a
# reader offline, or without the CDN, sees it raw).
RAW_REST = re.compile(r"System Message|Unknown (?:directive|interpreted text role)"
                      r"|:(?:func|class|meth|mod|attr|obj|ref|doc|math|data|exc):`"
                      r"|^\s*\.\. [a-z][\w-]*::|``|`_(?:\W|$)"
                      r"|\\[(\[]|\\(?:frac|sum|mathrm)\b", re.M)   # and TeX left untypeset


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path.split("?")[0] == "/__render_check__.html":
            body = CHECK_PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    if BROWSER is None:
        pytest.fail("FASTXENT_DOCS_REQUIRE_BROWSER=1 but no Chromium found (apt-get install chromium)")
    assert os.path.isfile(os.path.join(SITE, "index.html")), f"no built site in {SITE}"
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=os.path.abspath(SITE)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _chromium(*args, timeout=90):
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--hide-scrollbars", "--no-first-run", "--mute-audio", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def render(server, pages):
    """What the browser saw on each of ``pages`` (paths inside the site), by page."""
    pages_json = json.dumps([f"{server}/{page}" for page in pages])
    dom = _chromium("--virtual-time-budget=30000", "--dump-dom",
                    f"{server}/__render_check__.html#{urllib.parse.quote(pages_json, safe='')}",
                    timeout=180)
    m = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    assert m and m.group(1), "the check page reported nothing"
    reports = json.loads(html.unescape(m.group(1)))
    return {page: reports.get(f"{server}/{page}") for page in pages}


def screenshot(server, page, name, height):
    os.makedirs(SHOTS, exist_ok=True)
    path = os.path.join(SHOTS, name)
    _chromium(f"--window-size=1280,{height}", f"--screenshot={path}", f"{server}/{page}")
    assert os.path.getsize(path) > 10_000, f"{path} looks blank"
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    return path


def check_page(report, page):
    missing = [i["src"] for i in report["images"] if not (i["complete"] and i["width"] > 0)]
    assert not missing, f"{page}: images that did not load: {missing}"
    raw = sorted({m.group(0).strip() for m in RAW_REST.finditer(report["text"])})
    assert not raw, f"{page}: reST markup shown as text: {raw}"
    assert not report["external"], f"{page}: loads scripts or styles from elsewhere: {report['external']}"


PAGES = {
    # page: (h1, headings or field names it must show, at least this many images)
    "index.html": ("fastxent", [], 0),
    "reference/generated/fastxent.cross_entropy.html":
        ("fastxent.cross_entropy", ["Parameters", "Returns", "Examples"], 0),
    "reference/generated/fastxent.CrossEntropyLoss.html": ("fastxent.CrossEntropyLoss", [], 0),
    "user_guide/pytorch_semantics.html":
        ("PyTorch's semantics, and where fastxent differs", ["The formulas", "Where fastxent differs"], 0),
    "auto_examples/index.html": ("Gallery", [], 2),
    "auto_examples/seed_002_mnist_mlp.html":
        ("Training an MLP with NumPy and fastxent", ["The training curve"], 1),
    "auto_examples/bench_bars.html":
        ("The benchmark as a chart: fastxent, NumPy and PyTorch", ["Grouped bars"], 1),
}


@pytest.fixture(scope="module")
def reports(server):
    return render(server, list(PAGES))


@pytest.mark.parametrize("page", list(PAGES))
def test_page_renders(reports, page):
    h1, expected, min_images = PAGES[page]
    report = reports[page]
    assert report is not None, f"{page} did not load"
    assert report["h1"][:1] == [h1], f"{page}: h1 {report['h1']}"
    shown = set(report["h2"]) | set(report["rubrics"])
    assert set(expected) <= shown, f"{page}: missing {set(expected) - shown}; shows {sorted(shown)}"
    assert len(report["images"]) >= min_images, f"{page}: {len(report['images'])} images"
    check_page(report, page)


def test_index_links_every_part(reports):
    for part in ("User guide", "API reference", "Gallery", "Architecture"):
        assert part in reports["index.html"]["text"], part


def test_screenshots(server):
    """Screenshots of the index and of one API page, for a person to look at."""
    screenshot(server, "index.html", "index.png", 1100)
    screenshot(server, "reference/generated/fastxent.cross_entropy.html", "cross_entropy.png", 1800)
    screenshot(server, "auto_examples/seed_002_mnist_mlp.html", "mlp_example.png", 1400)
