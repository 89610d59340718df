"""The documentation site builds with ``mkdocs build --strict``, and nothing in it or in the README links out.

A broken link or anchor, a page missing from the navigation, or a configuration key without a
description fails the strict build. The site and the README must work from a clone with no network:
no link, stylesheet, script, font or image from elsewhere.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.helpers import PROJECT_ROOT

#: A URL that leaves the site: a scheme's host, or protocol-relative.
REMOTE = r"(?:[a-zA-Z][a-zA-Z0-9+.-]*:)?//"
EXTERNAL = re.compile(rf"^\s*{REMOTE}")
URL_ATTRIBUTES = {"href", "src", "srcset", "action", "formaction", "poster", "data", "cite", "background"}
CSS_REMOTE = re.compile(rf"""@import\s+(?:url\()?\s*["']?\s*{REMOTE}|url\(\s*["']?\s*{REMOTE}""")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
MD_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)")
MD_REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
HTML_URL = re.compile(r"""\b(?:href|src)\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)
BARE_URL = re.compile(r"(?:https?:)?//[^\s)>\]\"'<]+|www\.[^\s)>\]\"'<]+", re.IGNORECASE)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for this module with --strict into a temporary directory."""
    target = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # the theme's notice about its future, not about our pages
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-f", "mkdocs.yml", "-d", str(target)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return target


class _Urls(HTMLParser):
    """Every URL an HTML page makes the browser follow or fetch, and its inline CSS."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.css: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"
        for name, value in attrs:
            if value is None:
                continue
            if name == "style":
                self.css.append(value)
            elif name == "srcset":
                self.urls += [part.split()[0] for part in value.split(",") if part.strip()]
            elif name in URL_ATTRIBUTES:
                self.urls.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.css.append(data)


def external_references(site: Path) -> list[str]:
    """``page: url`` for every reference in the built site that leaves it."""
    found = []
    for path in sorted(site.rglob("*")):
        where = path.relative_to(site)
        if path.suffix == ".html":
            parser = _Urls()
            parser.feed(path.read_text(encoding="utf-8"))
            found += [f"{where}: {url}" for url in parser.urls if EXTERNAL.match(url)]
            found += [f"{where}: remote CSS in {css.strip()[:80]}" for css in parser.css if CSS_REMOTE.search(css)]
        elif path.suffix == ".css":
            found += [f"{where}: {m.group(0)}" for m in CSS_REMOTE.finditer(path.read_text(encoding="utf-8"))]
    return found


def markdown_link_problems(path: Path, root: Path = PROJECT_ROOT) -> list[str]:
    """Links in a Markdown file that leave the repository (``root``), or lead to nothing in it.

    Code (fenced blocks and inline spans) is not a link: ``curl http://localhost:8000`` is fine.
    A bare URL in prose is one (GitHub links it), and so is any path out of ``root``.
    """
    text = INLINE_CODE.sub("", FENCE.sub("", path.read_text(encoding="utf-8")))
    problems = {url: "leaves the repository" for url in BARE_URL.findall(text)}
    for target in MD_LINK.findall(text) + MD_REFERENCE.findall(text) + HTML_URL.findall(text):
        file_part = target.split("#", 1)[0]
        if EXTERNAL.match(target) or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):
            problems[target] = "leaves the repository"
        elif file_part.startswith("/") or not (path.parent / file_part).resolve().is_relative_to(root):
            problems[target] = "points outside the repository"
        elif file_part and not (path.parent / file_part).exists():
            problems[target] = "does not exist"
    return [f"{path.name}: {target} {why}" for target, why in problems.items()]


def test_the_site_builds_strictly_with_every_page(site):
    for page in ("index.html", "api/index.html", "configuration/index.html", "performance/index.html"):
        assert (site / page).is_file(), page
    assert not (site / "hooks").exists(), "the build hook must not be published as a page asset"


def test_nothing_in_the_built_site_leaves_it(site):
    assert external_references(site) == []


def test_the_scan_sees_external_references(tmp_path):
    """The scan itself: each way a page can reach out is caught, code and local links are not."""
    page = tmp_path / "page.html"
    page.write_text(
        '<link href="https://fonts.example/css"><script src="//cdn.example/x.js"></script>'
        '<img srcset="a.png 1x, http://img.example/b.png 2x"><a href="../local/">ok</a>'
        "<style>@import url('https://fonts.example/font.css');</style>"
        '<div style="background: url(//img.example/bg.png)"></div><code>http://localhost:8000</code>',
        encoding="utf-8",
    )
    (tmp_path / "theme.css").write_text('@import "https://x.example/a.css"; .a{}', encoding="utf-8")
    found = external_references(tmp_path)
    assert len(found) == 6, found


@pytest.mark.parametrize(
    "markdown",
    [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").rglob("*.md"))],
    ids=lambda path: str(path.relative_to(PROJECT_ROOT)),
)
def test_markdown_links_stay_in_the_repository(markdown):
    assert markdown_link_problems(markdown) == []


def test_the_markdown_scan_sees_links_out(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "[spec](../shared/spec.md) [site](https://example.org) <http://example.org> see www.example.org\n"
        '[abs](/etc/passwd) [gone](docs/nothing.md) <a href="//cdn.example/x">x</a>\n'
        "[here](#top) `curl http://localhost:8000`\n\n```bash\ncurl https://example.org\n```\n",
        encoding="utf-8",
    )
    problems = markdown_link_problems(readme, root=tmp_path)
    assert len(problems) == 7, problems


def test_the_readme_is_the_front_page():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert "make serve" in readme and "make test" in readme
    assert len(readme.splitlines()) <= 250
    assert "(docs/api.md)" in readme and "(docs/configuration.md)" in readme
