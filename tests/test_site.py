"""The built site, opened in headless Chromium with no network.

For every page under ``book/`` in the built site this checks that

* the page loads MathJax from the site itself and every equation is typeset: each ``.math``
  element holds an ``<mjx-container>``, no MathJax error (``<mjx-merror>``) is shown, and no raw
  ``$$``, ``\\[``, ``\\(`` or ``\\begin{`` is left in the rendered text outside code;
* every image loaded (``naturalWidth > 0``), and no file the page asked for failed to load;
* every chapter (``NN_name``) has a Colab link, and every Colab link points at the chapter's
  reader notebook ``notebooks/NN_name.ipynb``, which exists in the repository;
* every chapter offers its ``.ipynb`` and its ``.md`` for download, both files are in the site,
  and the ``.ipynb`` is the reader notebook (plain Jupyter Markdown, :mod:`dctutor.reader`).

The site is ``_build/html`` (``.ci/run`` builds it, then runs this file) or ``$DCTUTOR_SITE``.
Chromium is found on the ``PATH`` (``chromium``, ``chromium-browser``, ``google-chrome``) or
given by ``$DCTUTOR_CHROMIUM``. The test is skipped when either is missing, or when the site is
older than ``_config.yml`` or ``_toc.yml`` (a stale build), unless
``DCTUTOR_REQUIRE_SITE_TEST=1`` (CI), which turns the skip into a failure.
``DCTUTOR_SITE_SCREENSHOTS=DIR`` saves a full-page PNG of every page into ``DIR``.

Chromium is driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``), with
the standard library only: no Selenium, no WebDriver.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

REPO = Path(__file__).resolve().parent.parent
SITE = Path(os.environ.get("DCTUTOR_SITE") or REPO / "_build" / "html").resolve()
PAGES = sorted(SITE.glob("book/*.html")) if SITE.is_dir() else []
CHAPTER = re.compile(r"^\d\d_")
REQUIRED = os.environ.get("DCTUTOR_REQUIRE_SITE_TEST") == "1"
PAGE_TIMEOUT = 60.0  # seconds for one page to load and typeset
# Harmless JavaScript errors of the toolchain, not of the book: Jupyter Book 1.x emits
# sphinx-thebe's inline config script twice, so the second `const` declaration throws (thebe is
# not used: no thebe launch button is configured).
KNOWN_EXCEPTIONS = ("Identifier 'THEBE_JS_URL' has already been declared",)

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    # No network at all: every host name fails to resolve, so a page that still needs a CDN
    # shows it here, on a machine with internet as well as on one without.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--window-size=1200,2400",
]
VIEWPORT = {"width": 1200, "height": 2400, "deviceScaleFactor": 1, "mobile": False}


def _skip_or_fail(reason):
    if REQUIRED:
        pytest.fail(f"{reason} (DCTUTOR_REQUIRE_SITE_TEST=1)")
    pytest.skip(reason)


def find_chromium():
    env = os.environ.get("DCTUTOR_CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        exe = shutil.which(name)
        if exe:
            return exe
    return None


class DevToolsError(RuntimeError):
    pass


class Chromium:
    """A headless Chromium spoken to over ``--remote-debugging-pipe``.

    The browser reads NUL-terminated JSON messages from its fd 3 and writes them to its fd 4.
    """

    def __init__(self, exe, extra_flags=()):
        self._profile = tempfile.mkdtemp(prefix="dctutor-chromium-")
        cmd_r, self._cmd_w = os.pipe()
        self._res_r, res_w = os.pipe()

        def child_fds():  # runs in the child between fork and exec
            a = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(res_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [exe, *CHROMIUM_FLAGS, *extra_flags, "--remote-debugging-pipe",
             f"--user-data-dir={self._profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            preexec_fn=child_fds,
        )
        os.close(cmd_r)
        os.close(res_w)
        self._buffer = b""
        self._next_id = 0
        self.events = []  # (method, params, sessionId) received while waiting for replies

    # -- the protocol -------------------------------------------------------------------------
    def _read_message(self, deadline):
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from Chromium in time")
            ready, _, _ = select.select([self._res_r], [], [], left)
            if ready:
                chunk = os.read(self._res_r, 1 << 20)
                if not chunk:
                    raise DevToolsError(f"Chromium exited (code {self.proc.poll()})")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method, params=None, session=None, timeout=30.0):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._cmd_w, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise DevToolsError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append((reply["method"], reply.get("params", {}),
                                    reply.get("sessionId")))

    def wait_for(self, method, session, timeout):
        deadline = time.monotonic() + timeout
        while True:
            for i, (name, params, sid) in enumerate(self.events):
                if name == method and sid == session:
                    del self.events[i]
                    return params
            message = self._read_message(deadline)
            if "method" in message:
                self.events.append((message["method"], message.get("params", {}),
                                    message.get("sessionId")))

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except (DevToolsError, TimeoutError, OSError):
            pass  # already gone: the kill below covers the rest
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._cmd_w, self._res_r):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    # -- one page -----------------------------------------------------------------------------
    def inspect(self, url, script, screenshot=None):
        """Open ``url`` in a fresh tab, run ``script`` (an async JS expression returning JSON)
        after the load event, and return ``(result, requests, failures, exceptions)``."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"]
        try:
            for domain in ("Page", "Network", "Runtime"):
                self.send(f"{domain}.enable", session=session)
            self.send("Emulation.setDeviceMetricsOverride", dict(VIEWPORT), session=session)
            self.events.clear()
            self.send("Page.navigate", {"url": url}, session=session)
            self.wait_for("Page.loadEventFired", session, PAGE_TIMEOUT)
            reply = self.send(
                "Runtime.evaluate",
                {"expression": script, "awaitPromise": True, "returnByValue": True},
                session=session, timeout=PAGE_TIMEOUT)
            if "exceptionDetails" in reply:
                raise DevToolsError(f"page script failed: {reply['exceptionDetails']}")
            result = json.loads(reply["result"]["value"])
            if screenshot:  # the whole page: grow the viewport to the page's height
                height = self.send(
                    "Runtime.evaluate",
                    {"expression": "document.documentElement.scrollHeight",
                     "returnByValue": True}, session=session)["result"]["value"]
                self.send("Emulation.setDeviceMetricsOverride",
                          dict(VIEWPORT, height=min(int(height), 30000)), session=session)
                time.sleep(0.5)
                shot = self.send("Page.captureScreenshot", {"format": "png"},
                                 session=session, timeout=PAGE_TIMEOUT)
                Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
            requests, failures, exceptions = {}, [], []
            for name, params, sid in self.events:
                if sid != session:
                    continue
                if name == "Network.requestWillBeSent":
                    requests[params["requestId"]] = params["request"]["url"]
                elif name == "Network.loadingFailed" and not params.get("canceled"):
                    failures.append((requests.get(params["requestId"], "?"),
                                     params.get("errorText", "")))
                elif name == "Runtime.exceptionThrown":
                    details = params["exceptionDetails"]
                    exceptions.append(details.get("exception", {}).get("description")
                                      or details.get("text", "?"))
            return result, sorted(set(requests.values())), failures, exceptions
        finally:
            self.send("Target.closeTarget", {"targetId": target})


# Runs in the page once it has loaded: waits for MathJax and the images, then reports.
PAGE_SCRIPT = r"""
(async () => {
  const report = {mathjax: null};
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
    report.mathjax = MathJax.version;
  } else if (window.MathJax) {
    report.mathjax = "configured, not loaded";
  }
  const scripts = [...document.querySelectorAll("script[src]")].map(s => s.src);
  report.mathjaxScripts = scripts.filter(s => /mathjax/i.test(s));
  // images: make lazy ones load now, then wait for all of them
  const images = [...document.images];
  images.forEach(img => { img.loading = "eager"; });
  await Promise.all(images.map(img => img.complete ? null :
    new Promise(done => { img.addEventListener("load", done); img.addEventListener("error", done);
                          setTimeout(done, 20000); })));
  report.images = images.map(img => ({src: img.currentSrc || img.src, alt: img.alt,
    width: img.naturalWidth, height: img.naturalHeight, complete: img.complete,
    shown: img.getClientRects().length > 0}));
  // math: every .math element typeset, no MathJax errors
  const maths = [...document.querySelectorAll(".math")].filter(
    el => !el.closest("mjx-container") && !el.parentElement.closest(".math"));
  report.mathElements = maths.length;
  report.untypeset = maths.filter(el => !el.querySelector("mjx-container"))
    .map(el => el.textContent.trim().slice(0, 80));
  report.mjxContainers = document.querySelectorAll("mjx-container").length;
  report.mathErrors = [...document.querySelectorAll("mjx-merror")].map(
    el => (el.getAttribute("data-mjx-error") || el.textContent).slice(0, 80));
  // MathJax shows an undefined macro as red text rather than as an error: find those
  if (window.MathJax && MathJax.startup && MathJax.startup.document) {
    const walk = (node, tex) => {
      if (node.isKind && node.isKind("mtext") && node.attributes.get("mathcolor") === "red") {
        const text = node.childNodes.map(c => c.getText ? c.getText() : "").join("");
        if (text.startsWith("\\")) report.mathErrors.push(`undefined macro ${text} in ${tex}`);
      }
      (node.childNodes || []).forEach(child => walk(child, tex));
    };
    for (const item of MathJax.startup.document.math) {
      if (item.root) walk(item.root, item.math.trim().slice(0, 80));
    }
  }
  // raw TeX left in the rendered text (outside code, scripts and typeset math)
  const skip = "script, style, pre, code, textarea, mjx-container, .highlight, .mjx-assistive-mml";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const raw = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest(skip)) continue;
    const text = node.textContent;
    for (const token of ["$$", "\\[", "\\(", "\\begin{"]) {
      const at = text.indexOf(token);
      if (at >= 0) raw.push(text.slice(Math.max(0, at - 30), at + 50).trim());
    }
  }
  report.rawTex = raw;
  // links
  const links = [...document.querySelectorAll("a[href]")];
  report.colab = links.map(a => a.href).filter(h => h.includes("colab.research.google.com"));
  const grab = cls => [...document.querySelectorAll(`a[class*="${cls}"]`)].map(a => a.href);
  report.downloadNotebook = grab("download-notebook-button");
  report.downloadSource = grab("download-source-button");
  return JSON.stringify(report);
})()
"""


@pytest.fixture(scope="module")
def browser():
    if not PAGES:
        _skip_or_fail(f"no built site at {SITE}: build the book first "
                      "(jupyter-book build .) or set DCTUTOR_SITE")
    config_time = max((REPO / name).stat().st_mtime for name in ("_config.yml", "_toc.yml"))
    if max(page.stat().st_mtime for page in PAGES) < config_time:
        _skip_or_fail(f"the site at {SITE} is older than _config.yml or _toc.yml: rebuild it")
    exe = find_chromium()
    if exe is None:
        _skip_or_fail("no Chromium found (apt-get install chromium, or set DCTUTOR_CHROMIUM)")
    chromium = Chromium(exe)
    try:
        yield chromium
    finally:
        chromium.close()


def repo_path_of_colab(url):
    """``https://colab.research.google.com/github/ORG/REPO/blob/BRANCH/PATH`` → ``PATH``."""
    match = re.match(r"https://colab\.research\.google\.com/github/[^/]+/[^/]+/blob/[^/]+/(.+)$",
                     url)
    return unquote(match.group(1).split("?")[0].split("#")[0]) if match else None


def local_file(url):
    parsed = urlparse(url)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def check_page(report, requests, failures, exceptions, page):
    """Every problem on one page, as sentences."""
    problems = []
    name = page.stem
    # -- math
    if report["mathElements"]:
        if report["mathjax"] is None or report["mathjax"] == "configured, not loaded":
            problems.append(f"the page has {report['mathElements']} equations but MathJax did "
                            f"not load (scripts: {report['mathjaxScripts']})")
        if not report["mjxContainers"]:
            problems.append("no <mjx-container>: no equation was typeset")
        for tex in report["untypeset"]:
            problems.append(f"equation not typeset: {tex!r}")
    for src in report["mathjaxScripts"]:
        if not src.startswith("file:"):
            problems.append(f"MathJax is loaded from outside the site: {src}")
    for err in report["mathErrors"]:
        problems.append(f"MathJax error: {err!r}")
    for raw in report["rawTex"]:
        problems.append(f"raw TeX in the rendered text: {raw!r}")
    # -- images and other files
    for img in report["images"]:
        if img["width"] == 0:
            problems.append(f"broken image: {img['src'][:120]} (alt {img['alt']!r})")
    for url, error in failures:
        problems.append(f"failed to load {url[:120]}: {error}")
    for url in requests:
        if not url.startswith(("file:", "data:", "blob:", "about:")):
            problems.append(f"the page asked the network for {url[:120]}")
    for exc in exceptions:
        if any(known in exc for known in KNOWN_EXCEPTIONS):
            continue
        problems.append(f"JavaScript exception: {exc[:200]}")
    # -- Colab
    if CHAPTER.match(name) and not report["colab"]:
        problems.append("no Colab launch link on a chapter page")
    for url in report["colab"]:
        path = repo_path_of_colab(url)
        if path is None:
            problems.append(f"Colab link of an unexpected form: {url}")
        elif not (path.endswith(".ipynb") and (REPO / path).is_file()):
            problems.append(f"Colab link to {path}, which is not a notebook in the repository")
        elif CHAPTER.match(name) and path != f"notebooks/{name}.ipynb":
            problems.append(f"Colab link to {path}, not to the reader notebook "
                            f"notebooks/{name}.ipynb")
    # -- downloads
    if CHAPTER.match(name):
        for kind, suffix in (("downloadNotebook", ".ipynb"), ("downloadSource", ".md")):
            links = report[kind]
            if not any(local_file(h) and local_file(h).name == name + suffix for h in links):
                problems.append(f"no {suffix} download link (found {links})")
    for href in report["downloadNotebook"] + report["downloadSource"]:
        path = local_file(href)
        if path is not None and not path.is_file():
            problems.append(f"download link to a file missing from the site: {path}")
    for href in report["downloadNotebook"]:
        path = local_file(href)
        if path is not None and path.is_file() and CHAPTER.match(name):
            reader = REPO / "notebooks" / f"{name}.ipynb"
            if not reader.is_file() or path.read_bytes() != reader.read_bytes():
                problems.append(f"the .ipynb download {path.name} is not the reader notebook "
                                f"notebooks/{name}.ipynb")
    return problems


@pytest.mark.parametrize("page", PAGES or [None], ids=lambda p: p.stem if p else "no-site")
def test_page_renders_offline(browser, page):
    shots = os.environ.get("DCTUTOR_SITE_SCREENSHOTS")
    screenshot = None
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        screenshot = Path(shots) / f"{page.stem}.png"
    report, requests, failures, exceptions = browser.inspect(page.as_uri(), PAGE_SCRIPT,
                                                             screenshot)
    problems = check_page(report, requests, failures, exceptions, page)
    assert not problems, f"{page.relative_to(SITE)}:\n  " + "\n  ".join(problems)


def test_colab_link_form():
    url = ("https://colab.research.google.com/github/dctutor/dctutor/blob/main/"
           "notebooks/00_intro.ipynb")
    assert repo_path_of_colab(url) == "notebooks/00_intro.ipynb"
    assert repo_path_of_colab("https://example.org/book/00_intro.ipynb") is None
