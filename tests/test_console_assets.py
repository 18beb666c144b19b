"""The console's vendored browser files: ECharts and the Chinese web font are the
versions docs name (digests in static/vendor/README.md), with their licences, and
the font has a glyph for every character the console can show."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from fontTools.ttLib import TTFont

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "src/feecenter/console/static/vendor"
README = (VENDOR / "README.md").read_text(encoding="utf-8")
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def digest(name: str) -> str:
    return hashlib.sha256((VENDOR / name).read_bytes()).hexdigest()


def test_echarts_is_the_pinned_version_with_its_licence():
    assert f"`{digest('echarts.common.min.js')}`" in README
    version = re.search(r'version:"(6\.[0-9.]+)"',
                        (VENDOR / "echarts.common.min.js").read_text()).group(1)
    assert f"| {version} |" in README and f"echarts@{version}" in README
    assert "Apache License" in (VENDOR / "echarts.LICENSE").read_text()
    assert "Apache ECharts" in (VENDOR / "echarts.NOTICE").read_text()


def test_the_font_is_the_documented_subset_with_its_licence():
    assert f"`{digest('noto-sans-sc-subset.woff2')}`" in README
    assert "SIL Open Font License" in (VENDOR / "noto-sans-sc.LICENSE").read_text()
    assert (VENDOR / "noto-sans-sc-subset.woff2").stat().st_size < 700_000  # a subset (the full font is 4 MB)
    css = (ROOT / "src/feecenter/console/static/console.css").read_text()
    assert 'url("vendor/noto-sans-sc-subset.woff2") format("woff2")' in css


def test_the_font_has_every_character_the_console_shows():
    """Templates, the catalog and the domain messages pages show (message_zh): after
    a new message, scripts/subset-console-font makes the font again."""
    font = TTFont(VENDOR / "noto-sans-sc-subset.woff2")
    covered = set(font.getBestCmap())
    used = {char for path in (ROOT / "src/feecenter").rglob("*")
            if path.suffix in {".py", ".po", ".html"}
            for char in CJK.findall(path.read_text(encoding="utf-8"))}
    used |= {chr(code) for code in range(0x20, 0x7F)} | set("¥·–—“”")
    assert sorted(char for char in used if ord(char) not in covered) == []
