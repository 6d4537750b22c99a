"""The docs site: a strict Sphinx build (a warning fails), then every page rendered in headless Chromium with
no broken link, anchor or image."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.docs.commands import ROOT
from tests.integration.test_report_html import _browse, _chromium

# Loads every page in turn in an iframe and records, after each load, its images and its links.
PROBE = """<!doctype html><html><body><pre id="hwnas-probe"></pre><script>
const pages = %s, seen = {};
function next(i) {
  if (i >= pages.length) { document.getElementById("hwnas-probe").textContent = JSON.stringify(seen); return; }
  const f = document.createElement("iframe");
  f.onload = () => {
    const d = f.contentDocument;
    seen[pages[i]] = {
      title: d.title,
      images: [...d.images].map(im => [im.getAttribute("src"), im.complete, im.naturalWidth]),
      links: [...d.links].map(a => a.href),
    };
    f.remove(); next(i + 1);
  };
  f.src = pages[i]; document.body.appendChild(f);
}
next(0);
</script></body></html>"""


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids.update(v for k, v in attrs if k in ("id", "name") and v)


def _ids(page: Path, cache: dict[Path, set[str]]) -> set[str]:
    if page not in cache:
        parser = _Ids()
        parser.feed(page.read_text())
        cache[page] = parser.ids
    return cache[page]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "html"
    cmd = [
        sys.executable,
        "-m",
        "sphinx",
        "-W",
        "--keep-going",
        "-E",
        "-q",
        "-b",
        "html",
        str(ROOT / "docs"),
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"strict docs build failed (make docs-check):\n{done.stderr[-4000:]}"
    return out


def test_strict_build_has_every_page(site: Path) -> None:
    sources = {p.relative_to(ROOT / "docs").with_suffix(".html") for p in (ROOT / "docs").rglob("*.md")}
    built = {p.relative_to(site) for p in site.rglob("*.html")}
    assert sources <= built, sources - built
    assert "Configuration reference" in (site / "reference" / "config.html").read_text()
    api = (site / "reference" / "api.html").read_text()
    assert all(
        name in api
        for name in ("SearchSpace", "ProposingStrategy", "Evaluator", "Profiler", "ImageDataModule")
    )


def test_every_page_renders_in_chromium_with_no_broken_link_or_image(site: Path, tmp_path: Path) -> None:
    chromium = _chromium()
    pages = sorted(p for p in site.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts)
    probe = site / "probe.html"
    probe.write_text(PROBE % json.dumps([p.as_uri() for p in pages]))
    dom = _browse(
        chromium, tmp_path / "profile", "--allow-file-access-from-files", "--virtual-time-budget=60000",
        "--dump-dom", probe.as_uri(),
    ).stdout  # fmt: skip
    found = re.search(r'<pre id="hwnas-probe">(.*?)</pre>', dom, re.S)
    assert found and found.group(1).strip(), dom[-2000:]
    seen = json.loads(
        found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    )
    assert len(seen) == len(pages)
    broken, ids = [], {}
    n_images = n_links = 0
    for uri, page in seen.items():
        assert page["title"], uri
        for src, complete, width in page["images"]:
            n_images += 1
            if not (complete and width > 0):
                broken.append(f"{uri}: image {src} did not load")
        for href in page["links"]:
            url = urlsplit(href)
            if url.scheme != "file":
                continue  # external links are not followed offline
            n_links += 1
            target = Path(unquote(url.path))
            if not target.exists():
                broken.append(f"{uri}: link to missing {href}")
            elif url.fragment and target.suffix == ".html" and unquote(url.fragment) not in _ids(target, ids):
                broken.append(f"{uri}: link to missing anchor {href}")
    assert not broken, "\n".join(broken)
    assert n_images >= 1 and n_links > 200


def test_the_readme_links_only_to_files_that_exist() -> None:
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert targets
    missing = [t for t in targets if "://" not in t and not (ROOT / t).exists()]
    assert not missing, missing
    assert len(text.splitlines()) <= 150
