"""`mina dev` survives its own death: SIGKILL mid-transcription, restart, everything completes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from mina import audio
from mina.synth import default_meeting_lines, make_meeting

OPERATOR = "dev-operator-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dev:
    def __init__(self, data: Path, port: int) -> None:
        self.data, self.port = data, port
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MINA_")}
        env.update(
            MINA_DATA_DIR=str(self.data),
            PORT=str(self.port),
            MINA_OPERATOR_TOKEN=OPERATOR,
            MINA_TRANSCRIBER="simulated",
            MINA_SIM_LATENCY_SECONDS="1.5",
            MINA_WORKER_THREADS="1",
            MINA_SCHEDULER_INTERVAL_SECONDS="1",
        )
        log = (self.data.parent / "dev.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mina_cli", "dev"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        raise AssertionError("mina dev did not start: " + self.log())

    def log(self) -> str:
        return (self.data.parent / "dev.log").read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def api(self, method: str, path: str, token: str = OPERATOR, **kw: Any) -> requests.Response:
        return requests.request(
            method,
            f"{self.base}{path}",
            timeout=30,
            headers={"Authorization": f"Bearer {token}"},
            **kw,
        )


@pytest.fixture
def chunks(tmp_path: Path) -> list[Path]:
    make_meeting(default_meeting_lines(1.0), tmp_path / "m.wav")
    return audio.split(tmp_path / "m.wav", 10, tmp_path / "chunks")


def test_dev_killed_mid_transcription_completes_after_restart(
    tmp_path: Path, chunks: list[Path]
) -> None:
    dev = Dev(tmp_path / "data", free_port())
    dev.start()
    try:
        ids = []
        for _ in range(2):
            r = dev.api("POST", "/api/conversations", json={"title": "restart"})
            assert r.status_code == 201
            ids.append(r.json()["id"])
        for cid in ids:
            for n, path in enumerate(chunks):
                r = dev.api(
                    "POST",
                    f"/api/conversations/{cid}/chunks",
                    data={"index": str(n)},
                    files={"file": (path.name, path.read_bytes())},
                )
                assert r.status_code == 202, r.text
            assert dev.api("POST", f"/api/conversations/{cid}/finish", json={}).status_code == 202
        time.sleep(2.0)  # some chunks are transcribed, some in flight, some queued
        before = dev.api("GET", f"/api/conversations/{ids[1]}").json()
        assert before["processing_status"] != "ready"
        dev.kill()
        dev.start()
        deadline = time.monotonic() + 120
        views: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            views = [dev.api("GET", f"/api/conversations/{cid}").json() for cid in ids]
            if all(v["processing_status"] in ("ready", "partial", "failed") for v in views):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"not completed after restart: {views}\n{dev.log()}")
        for cid, view in zip(ids, views, strict=True):
            assert view["status"] == "transcribed"
            assert view["chunks"]["transcribed"] == len(chunks)
            events = dev.api("GET", f"/api/conversations/{cid}/events").json()["events"]
            types = [e["type"] for e in events]
            assert types.count("post_transcription_reveal") == 1
            assert types.count("transcription_complete") == 1
    finally:
        dev.stop()


def test_dev_prints_plain_links_one_per_line_when_its_output_is_a_file(tmp_path: Path) -> None:
    dev = Dev(tmp_path / "data", free_port())
    dev.start()
    try:
        # A port 200 characters long would wrap at 80 columns; the links are whole lines.
        deadline = time.monotonic() + 10
        while "dashboard" not in dev.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        out = dev.log()
        assert "\x1b[" not in out, out  # no colour codes in a file
        assert "production" not in out and "development server" not in out, out
        lines = out.splitlines()
        participant = next(ln for ln in lines if ln.startswith("participant page: "))
        link = participant.split(": ", 1)[1].strip()
        assert link.startswith(dev.base + "/c/") and "?token=" in link and " " not in link
        assert requests.get(link, timeout=10).status_code == 200  # copied as printed, it works
        dashboard = next(ln for ln in lines if ln.startswith("dashboard"))
        assert dashboard.split(":", 1)[1].strip() == f"{dev.base}/dashboard"
        token = next(ln for ln in lines if ln.startswith("operator token"))
        assert token.split(":", 1)[1].strip() == OPERATOR
        assert dev.api("GET", "/api/operator/conversations").status_code == 200
        # Socket.IO is served by the same quiet server.
        r = requests.get(f"{dev.base}/socket.io/?EIO=4&transport=polling", timeout=10)
        assert r.status_code == 200 and r.text.startswith("0{"), r.text
    finally:
        dev.stop()
    assert dev.proc is not None and dev.proc.returncode == 0, dev.log()
