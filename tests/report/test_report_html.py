"""The HTML report: self-contained, escaped, and actually rendered by headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

from pngcheck import decode
from report_support import ALI, World, run_cli

from residency.report.charts import PALETTE

WIDTH, HEIGHT = 1280, 2000


class Tags(HTMLParser):
    """Every start tag and attribute name the browser would see."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.names.append(tag)
        self.attributes.update(name for name, _ in attrs)


def write_report(world: World) -> Path:
    out = world.root / "report.html"
    r = run_cli("report", *world.args(), "-o", str(out), cwd=world.root)
    assert r.code == 1, r.stderr  # violations found, report still written
    assert r.stderr == ""
    assert "5 out of compliance with health-2025" in r.stdout
    assert str(out) in r.stdout
    return out


def test_html_has_the_rows_and_escapes_user_input(world: World) -> None:
    html = write_report(world).read_text()
    assert "<title>Data residency report — health-2025" in html
    assert "28 CFR Part 202 (DOJ bulk sensitive data rule, 2025)" in html
    # Keys and audit actors are user input: never markup.
    assert "<script" not in html.lower()
    assert "&lt;script&gt;x&lt;/script&gt;&amp;&#34;&#39;.json" in html
    assert "<img" not in html.lower()
    assert "evil/&lt;img src=x onerror=alert(1)&gt;" in html
    # Self-contained: no scripts, no external resources.
    tags = Tags()
    tags.feed(html)
    assert {"script", "img", "link", "iframe", "object", "embed"}.isdisjoint(tags.names)
    assert {"src", "href"}.isdisjoint(tags.attributes)
    assert "@import" not in html
    assert "url(" not in html
    assert tags.names.count("svg") == 2
    violations = html.split('id="violations"')[1].split("</table>")[0]
    assert violations.count("<tr>") == 6  # header + 5 rows
    assert "clinic/us/patient-2.json" in violations
    assert "copy from oci-us-ashburn-1 to aws-us-east-1; then delete from" in violations
    assert 'id="audit-refusal"' in html
    assert "third refusal" in html
    concern = html.split('id="concern"')[1].split("</table>")[0]
    assert ALI in concern
    assert "Alibaba Cloud (Aliyun)" in concern


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("chromium")
    assert exe is not None, "chromium is required (Debian package `chromium`)"
    return subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_chromium_loads_the_page_with_its_charts(world: World, tmp_path: Path) -> None:
    page = write_report(world).as_uri()
    dom = chromium("--dump-dom", page, profile=tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The charts are in the loaded DOM with one bar per country and per provider.
    assert dom.stdout.count("<svg") == 2
    assert len(re.findall(r"<rect\b", dom.stdout)) == 3 + 3
    assert "Singapore (SG)" in dom.stdout

    shot = tmp_path / "report.png"
    run = chromium(
        f"--screenshot={shot}",
        f"--window-size={WIDTH},{HEIGHT}",
        page,
        profile=tmp_path / "profile-shot",
    )
    assert run.returncode == 0, run.stderr[-2000:]
    image = decode(shot)
    assert (image.width, image.height) == (WIDTH, HEIGHT)
    # Text is anti-aliased: a rendered page has hundreds of colours, a blank one has one.
    assert len(image.colours) > 200
    # The bars were painted: solid areas in the chart colours.
    for colour in PALETTE[:3]:
        assert image.colours[bytes.fromhex(colour[1:])] > 1000, colour
