"""The website in a real browser (headless Chromium): every page of the built book, and proof that the check
fails when a page is broken. Marked `site`: `make site` runs them after `make book` (`make test` does both)."""
import re
from pathlib import Path

import pytest

import sitecheck

pytestmark = pytest.mark.site
ROOT = Path(__file__).parent.parent
HTML = ROOT / "book" / "_build" / "html"


def test_every_page_of_the_built_site():
    report = sitecheck.check_site(HTML, screens=ROOT / "book" / "_build" / "screens")
    assert report.problems == [], "\n".join(report.problems)
    assert len([p for p in report.pages if p.startswith("notebooks/")]) == 12
    landing = (HTML / "book" / "intro.html").read_text()
    for page in ("methods.html", "api.html", "references.html", "glossary.html"):
        assert re.search(rf'href="{re.escape(page)}[#"]', landing), f"the landing page does not link {page}"
    assert len(list((ROOT / "book" / "_build" / "screens").glob("*.png"))) == len(report.pages)


def page(body: str, title: str = "a page", head: str = "") -> str:
    return f"<!doctype html><html><head><title>{title}</title>{head}</head><body><main><p>{body}</p></main></body></html>"


def test_the_check_fails_on_a_broken_page(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "good.png").write_bytes((ROOT / "book" / "_static" / "favicon.png").read_bytes())
    (tmp_path / "index.html").write_text(page('<a href="good.html">fine</a> <a href="missing.html">broken</a> '
                                              '<a href="good.html#nowhere">no anchor</a> <img src="good.png"> '
                                              '<img src="missing.png">', head='<link rel="icon" href="good.png">'))
    (tmp_path / "good.html").write_text(page("fine", head='<link rel="icon" href="good.png">'))
    (tmp_path / "wide.html").write_text(page('<div style="width:2000px">too wide</div>',
                                             head='<link rel="icon" href="good.png">'))
    (tmp_path / "error.html").write_text(page("", head='<link rel="icon" href="good.png"><script>nope();</script>'))
    (tmp_path / "notebooks" / "n.html").write_text(page("no launch buttons, no exercises",
                                                        head='<link rel="icon" href="../good.png">'))
    report = sitecheck.check_site(tmp_path, search_word=None)
    text = "\n".join(report.problems)
    assert "index.html: broken link missing.html" in text
    assert "index.html: link to a missing anchor good.html#nowhere" in text
    assert "index.html: broken image missing.png" in text
    assert "wide.html: scrolls sideways" in text
    assert "error.html: console error" in text
    assert "notebooks/n.html: no Colab launch button" in text and "notebooks/n.html: no Binder launch button" in text
    assert "notebooks/n.html: fewer than two exercise solutions behind a toggle" in text
    assert not any(p.startswith("good.html") for p in report.problems)
