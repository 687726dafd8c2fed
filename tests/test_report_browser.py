"""The report in a real headless Chromium: it renders, the chart is drawn, and no script or console error appears.

Needs the ``chromium`` binary (Debian package ``chromium``); skipped without it. Set
``AUTOEVOL_REPORT_SCREENSHOT=/path/shot.png`` to keep the screenshot for a person to look at.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from autoevol_dspy.report.plot import COLORS
from test_report import make_finished_run

logger = logging.getLogger(__name__)

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless browser test needs `chromium` on PATH (apt-get install chromium)"
)

WIDTH, HEIGHT = 1280, 1600


def chromium(user_data: Path, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium once, offline and without a sandbox (containers run as root)."""
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={user_data}", "--enable-logging=stderr", "--v=0", *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def console_lines(stderr: str) -> list[str]:
    """Chromium's console messages (JS errors, CSP violations) as logged with ``--enable-logging=stderr``."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


# A small PNG reader (8-bit RGB/RGBA, not interlaced: what Chromium writes), to avoid a Pillow dependency.


def _add_bytes(x: bytes, y: bytes) -> bytes:
    """Bytewise (x + y) mod 256 on big integers, fast in pure Python."""
    n = len(x)
    a, b = int.from_bytes(x, "big"), int.from_bytes(y, "big")
    low, high = int.from_bytes(b"\x7f" * n, "big"), int.from_bytes(b"\x80" * n, "big")
    return (((a & low) + (b & low)) ^ ((a ^ b) & high)).to_bytes(n, "big")


def _paeth(left: int, up: int, corner: int) -> int:
    estimate = left + up - corner
    da, db, dc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
    if da <= db and da <= dc:
        return left
    return up if db <= dc else corner


def _unfilter(kind: int, line: bytes, previous: bytes, bpp: int) -> bytes:
    if kind == 0:
        return line
    if kind == 2:
        return _add_bytes(line, previous)
    out = bytearray(line)
    for i in range(len(out)):
        left = out[i - bpp] if i >= bpp else 0
        if kind == 1:
            out[i] = (out[i] + left) & 0xFF
        elif kind == 3:
            out[i] = (out[i] + ((left + previous[i]) >> 1)) & 0xFF
        else:
            out[i] = (out[i] + _paeth(left, previous[i], previous[i - bpp] if i >= bpp else 0)) & 0xFF
    return bytes(out)


def png_pixels(path: Path) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Width, height and the RGB pixels of a PNG, row by row."""
    data, position, chunks = path.read_bytes(), 8, []
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0, "unexpected PNG format"
        elif kind == b"IDAT":
            chunks.append(body)
    bpp = 3 if color == 2 else 4
    raw, stride = zlib.decompress(b"".join(chunks)), width * bpp + 1
    pixels, previous = [], bytes(width * bpp)
    for row in range(height):
        previous = _unfilter(raw[row * stride], raw[row * stride + 1:(row + 1) * stride], previous, bpp)
        pixels += [tuple(previous[i:i + 3]) for i in range(0, len(previous), bpp)]
    return width, height, pixels


def rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("browser-run")
    make_finished_run(run_dir)
    return run_dir / "report.html"


def test_the_dom_has_the_chart_and_tables_and_no_console_output(report, tmp_path):
    done = chromium(tmp_path / "profile", "--dump-dom", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert "<svg" in dom and "<line" in dom and "<circle" in dom
    assert "Failure rate per step" in dom and 'id="trials"' in dom and 'class="dl ins"' in dom
    assert "<script" not in dom.lower()
    assert console_lines(done.stderr) == []


def test_the_screenshot_shows_the_page_and_the_plot(report, tmp_path):
    shot = tmp_path / "report.png"
    done = chromium(tmp_path / "profile", f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", report.as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    assert console_lines(done.stderr) == []
    assert shot.stat().st_size > 30_000, "the screenshot is suspiciously small"
    target = os.environ.get("AUTOEVOL_REPORT_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)
        logger.info("screenshot saved to %s", target)

    width, height, pixels = png_pixels(shot)
    assert (width, height) == (WIDTH, HEIGHT)
    counts: dict[tuple[int, int, int], int] = {}
    for pixel in pixels:
        counts[pixel] = counts.get(pixel, 0) + 1
    assert len(counts) > 200, "the page looks blank"
    assert max(counts.values()) < 0.9 * len(pixels), "one color covers almost the whole page"
    # The incumbent line (3 px wide, across the whole chart) and the complete candidates' dots are drawn.
    assert counts.get(rgb(COLORS["incumbent"]), 0) > 1_000
    assert sum(n for color, n in counts.items() if _close(color, rgb(COLORS["complete"]))) > 50


def _close(a: tuple[int, int, int], b: tuple[int, int, int], tolerance: int = 24) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b))


def test_the_page_shows_the_held_out_check_and_example_cases(report, tmp_path):
    done = chromium(tmp_path / "profile", "--dump-dom", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert '<section id="holdout">' in dom and "95% interval" in dom and "held-out failure rate" in dom
    assert '<section id="evidence">' in dom and dom.count('<dl class="case">') >= 2
    assert "<dt>seed</dt>" in dom and "<dt>round 1</dt>" in dom and "<dt>verdict</dt>" in dom
    shot = tmp_path / "evidence.png"
    tall = chromium(tmp_path / "profile2", f"--screenshot={shot}", f"--window-size={WIDTH},3600", report.as_uri())
    assert tall.returncode == 0 and shot.is_file(), tall.stderr[-2000:]
    _, _, pixels = png_pixels(shot)
    # The verdicts of failed and passed example cases are drawn in the failed and complete colors.
    assert sum(1 for p in pixels if _close(p, rgb(COLORS["failed"]), 40)) > 40
    assert sum(1 for p in pixels if _close(p, rgb(COLORS["complete"]), 40)) > 40
