"""report.html of a tiny real search with its final stage, opened in a real headless Chromium."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from tests.conftest import TINY_FINAL, TINY_SEARCH, service_missing

# Written into a copy of the page: after load, every image's size goes into the DOM for --dump-dom.
PROBE = """<script>
window.addEventListener("load", () => {
  const out = document.createElement("pre");
  out.id = "hwnas-probe";
  out.textContent = JSON.stringify([...document.images].map(i => [i.alt, i.complete, i.naturalWidth]));
  document.body.appendChild(out);
});
</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    service_missing(
        "HWNAS_REQUIRE_CHROMIUM",
        "no headless Chromium: bash tests/services.sh install (Debian package chromium)",
    )


def _browse(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           f"--user-data-dir={profile}", "--hide-scrollbars", "--virtual-time-budget=5000", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


@pytest.mark.integration
def test_report_html_is_self_contained_and_every_image_renders_in_chromium(
    make_cfg, tmp_path: Path, caplog
) -> None:
    chromium = _chromium()
    from hwnas.tasks import search

    caplog.set_level(logging.INFO)
    overrides = [*TINY_SEARCH, *TINY_FINAL, "search.n_trials=2", "final.top_k=1", "final.baseline=false",
                 "final.trainer.max_epochs=1", "final.trainer.limit_train_batches=2", "final.jobs=1",
                 "dataset.dataset.num_test=16", "final.int8.calibration_batches=2"]  # fmt: skip
    cfg = make_cfg("search", overrides)
    summary = search.run(cfg)
    run_dir = Path(cfg.run_dir)
    page = run_dir / "report.html"
    messages = [r.getMessage() for r in caplog.records]
    said = [i for i, m in enumerate(messages) if m.startswith(f"report: {page} (self-contained")]
    last_stage = max(i for i, m in enumerate(messages) if m.startswith(("done in", "final stage done")))
    assert len(said) == 1 and said[0] > last_stage  # the run ends by saying where the page is
    assert any(m.startswith("progress: 2/2 unique (100%), 0 failed, 0 infeasible, front ") for m in messages)
    assert (
        summary["outputs"]["report_html"] == str(page)
        and "(report.html)" in (run_dir / "report.md").read_text()
    )

    html = page.read_text()
    sources = re.findall(r'<img[^>]*\ssrc="([^"]*)"', html)
    front = summary["front"]
    assert len(sources) == 2 + 2 + len(front)  # front + evolution, the final stage's 2 charts, 1 picture each
    assert all(s.startswith(("data:image/png;base64,", "data:image/gif;base64,")) for s in sources)
    assert not re.search(r"<(script|link)\b|url\(", html)  # nothing fetched, nothing run
    for text in ("Pick a model", "Every model (final/final.csv)", "n_trials: 2", "onnxruntime", "hypervolume",
                 *[m["arch_key"] for m in front], summary["final"]["models"][0]["arch_key"]):  # fmt: skip
        assert text in html, text

    probe = run_dir / "probe.html"
    probe.write_text(html.replace("</body>", PROBE + "\n</body>"))
    dom = _browse(chromium, tmp_path / "profile", "--dump-dom", probe.as_uri()).stdout
    found = re.search(r'<pre id="hwnas-probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    images = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert len(images) == len(sources) and all(done and width > 0 for _, done, width in images), images

    shot = tmp_path / "report.png"
    _browse(chromium, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri())
    with Image.open(shot) as img:
        rgb = img.convert("RGB")
        assert rgb.size == (1280, 2400)
        assert len(rgb.getcolors(maxcolors=1 << 20) or range(1 << 20)) > 200  # text, plots: not blank
        assert max(ImageStat.Stat(rgb).stddev) > 20
