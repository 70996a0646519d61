"""Checks a built website in headless Chromium, page by page, as a reader's browser sees it.

    .venv/bin/python tests/sitecheck.py book/_build/html        # prints a report, exits 1 on a problem

Every page: it loads; no console error (a resource outside the site that an offline machine cannot reach is
reported apart, as `offline`); every internal link resolves, to its page and its #anchor; every image loads;
no horizontal scroll at 1280 px; readable at 390 px (no horizontal scroll, body text at least 14 px); at most
one search box at desktop width; a screenshot per page. Notebook pages: Colab and Binder launch buttons, and
their exercises' hidden solutions open when clicked. The search page finds a word. Chromium and ChromeDriver
come from Debian (`make browser` installs them).
"""
from __future__ import annotations

import functools
import http.server
import json
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
DESKTOP, PHONE = (1280, 900), (390, 844)
MIN_FONT_PX = 14


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)

    def add(self, page: str, what: str):
        self.problems.append(f"{page}: {what}")


class Server:
    """The folder over HTTP on a free localhost port, in a thread."""

    def __init__(self, root: Path):
        handler = functools.partial(_Quiet, directory=str(root))
        self.httpd = _QuietServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):      # a browser that closes a connection early is no error
        pass


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} is missing: run `make browser` (Debian's chromium and chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--hide-scrollbars"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def pages_of(root: Path) -> list[str]:
    """Every HTML page of the site but Sphinx's generated indexes, relative to root."""
    skip = {"genindex.html", "py-modindex.html", "search.html"}
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.html")
                  if p.name not in skip and not str(p.relative_to(root)).startswith(("_static", "_sources")))


def resolves(url: str, cache: dict) -> bool:
    if url not in cache:
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                cache[url] = r.status == 200
        except (urllib.error.URLError, OSError):
            cache[url] = False
    return cache[url]


def anchors_of(driver, url: str, cache: dict) -> set[str]:
    if url not in cache:
        html = urllib.request.urlopen(url, timeout=10).read().decode("utf-8", "replace")
        import re
        cache[url] = set(re.findall(r'\bid="([^"]+)"', html)) | set(re.findall(r'\bname="([^"]+)"', html))
    return cache[url]


def console_errors(driver, base: str, page: str, report: Report):
    for entry in driver.get_log("browser"):
        if entry["level"] != "SEVERE":
            continue
        msg = entry["message"]
        if base not in msg and ("http://" in msg or "https://" in msg):
            report.offline.append(f"{page}: {msg[:160]}")
        else:
            report.add(page, f"console error: {msg[:200]}")


def check_links_and_images(driver, base: str, page: str, report: Report, cache: dict, anchors: dict):
    links = driver.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
    for href in sorted(set(links)):
        if not href.startswith(base):
            continue
        target, _, frag = href.partition("#")
        target = target.split("?")[0]
        if target.endswith("/"):
            target += "index.html"
        if not resolves(target, cache):
            report.add(page, f"broken link {href[len(base):]}")
        elif frag and target.endswith(".html") and urllib.parse.unquote(frag) not in anchors_of(driver, target, anchors):
            report.add(page, f"link to a missing anchor {href[len(base):]}")
    broken = driver.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
    for src in broken:
        report.add(page, f"broken image {src.replace(base, '')}")


def horizontal_scroll(driver) -> int:
    return driver.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")


def visible_search_boxes(driver) -> int:
    return driver.execute_script("""
        const boxes = document.querySelectorAll(
            'input[type=search], input[name=q], button.search-button-field, button.search-button');
        return Array.from(boxes).filter(b => b.offsetParent !== null && b.getBoundingClientRect().width > 0).length""")


def open_toggles(driver, page: str, report: Report) -> int:
    """Clicks every hidden solution (myst-nb's hidden cells are <details>; sphinx-togglebutton's are buttons)
    and checks its content shows. Returns how many it opened."""
    from selenium.webdriver.common.by import By

    opened = 0
    for summary in driver.find_elements(By.CSS_SELECTOR, "details.hide > summary, details.toggle-details > summary"):
        details = summary.find_element(By.XPATH, "..")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", summary)
        summary.click()
        time.sleep(0.05)
        shown = driver.execute_script(
            "const d = arguments[0]; const c = d.querySelector('.cell_input, .highlight, .toggle-details__container, "
            "div:not(.summary)'); return d.open && c !== null && c.getBoundingClientRect().height > 0", details)
        if not shown:
            report.add(page, "a toggle does not open")
        opened += 1
    for button in driver.find_elements(By.CSS_SELECTOR, "button.toggle-button"):
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
        button.click()
        time.sleep(0.3)
        target = button.get_attribute("data-target")
        if target and not driver.execute_script(
                "const t = document.querySelector(arguments[0]); return t !== null && t.getBoundingClientRect().height > 0",
                target):
            report.add(page, "a toggle button does not open its content")
        opened += 1
    return opened


def loaded(driver, seconds: float = 10.0) -> bool:
    """Has the page finished loading (readyState complete, a title)? Polled for a few seconds: right after a
    resize or a search, Chromium sometimes answers `get` before the new document is complete."""
    deadline = time.time() + seconds
    while True:
        if driver.execute_script("return document.readyState") == "complete" and driver.title:
            return True
        if time.time() > deadline:
            return False
        time.sleep(0.1)


def check_site(root: Path, screens: Path | None = None, notebook_dirs: tuple[str, ...] = ("notebooks/",),
               search_word: str | None = "omega", need_toggles: bool = True) -> Report:
    root = Path(root)
    if not (root / "index.html").exists():
        raise FileNotFoundError(f"no built site in {root}: run `make book` first")
    report, cache, anchors = Report(), {}, {}
    server = Server(root)
    driver = browser()
    try:
        for page in pages_of(root):
            report.pages.append(page)
            driver.set_window_size(*DESKTOP)
            driver.get(server.url + page)
            if not loaded(driver):
                report.add(page, "did not load")
            console_errors(driver, server.url, page, report)
            check_links_and_images(driver, server.url, page, report, cache, anchors)
            if (dx := horizontal_scroll(driver)) > 1:
                report.add(page, f"scrolls sideways by {dx} px at {DESKTOP[0]} px")
            if (n := visible_search_boxes(driver)) > 1:
                report.add(page, f"{n} search boxes at {DESKTOP[0]} px")
            if screens is not None:
                screens.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(screens / (page.replace("/", "__").removesuffix(".html") + ".png")))
            if page.startswith(notebook_dirs):
                hrefs = " ".join(driver.execute_script(
                    "return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"))
                for name, host in (("Colab", "colab.research.google.com"), ("Binder", "mybinder.org")):
                    if host not in hrefs:
                        report.add(page, f"no {name} launch button")
                if need_toggles and open_toggles(driver, page, report) < 2:
                    report.add(page, "fewer than two exercise solutions behind a toggle")
            driver.set_window_size(*PHONE)
            time.sleep(0.1)
            if (dx := horizontal_scroll(driver)) > 1:
                report.add(page, f"scrolls sideways by {dx} px at {PHONE[0]} px")
            font = driver.execute_script(
                "const p = document.querySelector('main p, article p, p');"
                "return p ? parseFloat(getComputedStyle(p).fontSize) : 16")
            if font < MIN_FONT_PX:
                report.add(page, f"body text {font:.0f} px at {PHONE[0]} px")
        if search_word:
            driver.set_window_size(*DESKTOP)
            driver.get(server.url + f"search.html?q={search_word}")
            found = 0
            for _ in range(100):
                found = driver.execute_script("return document.querySelectorAll('#search-results li').length")
                if found:
                    break
                time.sleep(0.1)
            if not found:
                report.add("search.html", f"the search finds nothing for {search_word!r}")
    finally:
        driver.quit()
        server.close()
    return report


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0] if argv else "book/_build/html")
    t0 = time.time()
    report = check_site(root, screens=root.parent / "screens")
    print(json.dumps(dict(pages=len(report.pages), problems=report.problems, offline=report.offline,
                          seconds=round(time.time() - t0, 1)), indent=1))
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
