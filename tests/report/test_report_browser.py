"""The report renders in a real browser: headless Chromium loads index.html, its tables and every
image. Skips where Chromium is absent (`.ci/install-chromium.sh` installs it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from softorder.report.html import write_report

CHECK = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const loaded = imgs.filter((i) => i.complete && i.naturalWidth > 0).length;
  const out = document.createElement("div");
  out.id = "browser-check";
  out.textContent = `imgs=${imgs.length} loaded=${loaded} tables=${document.querySelectorAll("table").length}`
    + ` rows=${document.querySelectorAll("table.per-task tbody tr").length}`;
  document.body.appendChild(out);
});
</script>
"""


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.skipif(_chromium() is None, reason="chromium not installed (run .ci/install-chromium.sh)")
def test_report_renders_in_headless_chromium(compare_dir: Path, tmp_path: Path) -> None:
    index = write_report(compare_dir)
    check = index.with_name("browser_check.html")  # beside index.html so the images resolve
    check.write_text(index.read_text().replace("</body>", CHECK + "</body>"))
    cmd = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
        "--dump-dom", check.as_uri(),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("chromium did not finish rendering the report within 90 s")
    m = re.search(r"imgs=(\d+) loaded=(\d+) tables=(\d+) rows=(\d+)", proc.stdout)
    assert m, f"no check result in the DOM (rc={proc.returncode}):\n{proc.stderr[-2000:]}"
    imgs, loaded, tables, rows = map(int, m.groups())
    assert imgs >= 4 and loaded == imgs, m.group(0)
    assert tables >= 4 and rows == 3, m.group(0)  # results, comparisons, per-task, versions
