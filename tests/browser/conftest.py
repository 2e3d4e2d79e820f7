"""Browser tests: a live `mina web` process, real workers, Debian's chromium under Playwright.

Chromium gets a fake microphone that plays a WAV made with espeak-ng, so the recorder path runs
the real MediaRecorder. No browser is ever downloaded: the executable is /usr/bin/chromium.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import URLError

import pytest

from mina.synth import Line, make_meeting
from tests.fixtures.stack import ROOT, wait_for

CHROMIUM = "/usr/bin/chromium"
# Screenshots go to a temporary folder; scripts/screenshots.sh points this at docs/img to
# refresh the README's images, so a test run never leaves the work tree dirty.
SHOTS = Path(os.environ.get("MINA_TEST_SCREENSHOTS") or tempfile.mkdtemp(prefix="mina-shots-"))


# Every box whose content must fit inside it: cards, stat tiles, key-value tiles, the
# horizontal scrollers around tables, and the tables themselves against their container.
OVERFLOWS = """
() => {
  const out = [];
  const boxes = document.querySelectorAll(".card, .stat, .kv > div, .scroll-x, .scroll, .topbar");
  for (const node of boxes) {
    if (node.offsetParent === null) continue;  // hidden
    if (node.scrollWidth > node.clientWidth + 1) {
      out.push(`${node.id || node.className} (${node.dataset.stat || ""}): content ` +
               `${node.scrollWidth}px in ${node.clientWidth}px`);
    }
  }
  for (const table of document.querySelectorAll("table")) {
    if (table.offsetParent === null) continue;
    const box = table.parentElement.getBoundingClientRect();
    const own = table.getBoundingClientRect();
    if (own.right > box.right + 1) out.push(`table#${table.id}: ${own.right - box.right}px out`);
  }
  return out;
}
"""


def overflows_after_resize(page: Any, timeout_s: float = 3.0) -> list[str]:
    """What overflows once the page has re-laid out after a viewport change: Chart.js resizes
    its canvases on the next ResizeObserver callback, so poll (bounded) for the boxes to fit
    and return what still does not. (The page's CSP forbids `wait_for_function`'s eval.)"""
    deadline = time.monotonic() + timeout_s
    while True:
        found: list[str] = page.evaluate(OVERFLOWS)
        if not found or time.monotonic() > deadline:
            return found
        page.wait_for_timeout(100)


def operator_login(page: Any, base_url: str, login_path: str = "/login") -> None:
    """Sign in on the login form with the operator token and land on the dashboard."""
    from tests.conftest import OPERATOR_TOKEN

    page.goto(f"{base_url}{login_path}")
    page.fill("input[name=token]", OPERATOR_TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/dashboard")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as resp:
            return bool(resp.status == 200)
    except (URLError, OSError):
        return False


@pytest.fixture
def live_server(
    clean_db: str, clean_redis: None, tmp_path: Path
) -> Iterator[Callable[[], LiveServer]]:
    """Start `mina web` with the current `MINA_*` environment: `server = live_server()`."""
    started: list[LiveServer] = []

    def start() -> LiveServer:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PORT": str(port), "MINA_PUBLIC_URL": url, "PYTHONUNBUFFERED": "1"}
        log = tmp_path / f"web-{len(started)}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "mina_cli", "-v", "web"],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        server = LiveServer(url, proc, log)
        started.append(server)
        wait_for(lambda: _up(url) or proc.poll() is not None, timeout=60, interval=0.2)
        if proc.poll() is not None:
            raise RuntimeError(f"mina web exited at start:\n{server.log_tail()}")
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def microphone_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the fake microphone plays (in a loop): two espeak voices, 48 kHz mono WAV."""
    out = tmp_path_factory.mktemp("mic")
    raw = out / "speech.wav"
    lines = [
        Line("Alice", "Good morning everyone, let us start the weekly planning meeting."),
        Line("Bob", "Thanks Alice. I will send the budget report to the team by Friday."),
        Line("Alice", "Great. Can you also review the launch checklist before Monday?"),
    ]
    make_meeting(lines, raw)
    wav = out / "mic.wav"
    subprocess.run(["sox", str(raw), "-r", "48000", "-c", "1", "-b", "16", str(wav)], check=True)
    return wav


@pytest.fixture(scope="session")
def browser(microphone_wav: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium")
    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone_wav}",
    ]
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1360, "height": 900})
    ctx.grant_permissions(["microphone"])
    yield ctx
    ctx.close()


def console_log(page: Any) -> list[str]:
    """Collect the page's console errors and uncaught exceptions for assertion messages."""
    lines: list[str] = []
    page.on("console", lambda m: lines.append(f"console.{m.type}: {m.text}"))
    page.on("pageerror", lambda e: lines.append(f"pageerror: {e}"))
    return lines
