"""The processes of a chaos run, each in its own process group so a SIGKILL takes all of it:
redis-server (AOF on, a free port, started here), gunicorn as the Procfile starts it,
`mina worker` and `mina scheduler` processes. PostgreSQL is the test session's database."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    cmd: list[str]
    env: dict[str, str]
    log: Path
    ready: str | None = None  # a line the log shows once it serves
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    offset: int = 0  # where this start's lines begin in the (appended) log

    def start(self, timeout: float = 60.0) -> None:
        before = self._count()
        self.offset = self.log.stat().st_size if self.log.exists() else 0
        self.popen = subprocess.Popen(
            self.cmd,
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.starts += 1
        deadline = time.monotonic() + timeout
        while self.ready and self._count() <= before:
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not start:\n{self.tail()}")
            time.sleep(0.1)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        self.popen = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def since_start(self) -> str:
        with self.log.open("rb") as fh:
            fh.seek(self.offset)
            return fh.read().decode(errors="replace")

    def _count(self) -> int:
        if not self.ready or not self.log.exists():
            return 0
        return self.log.read_text(errors="replace").count(self.ready)

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name}\n" + "\n".join(text.splitlines()[-lines:])


@dataclass
class Stack:
    tmp: Path
    settings: dict[str, str]  # MINA_* of every process
    workers: int = 2
    schedulers: int = 2
    amqp_url: str | None = None  # RabbitMQ as the broker (Redis then keeps group callbacks)
    redis_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    procs: dict[str, Proc] = field(default_factory=dict)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.settings,
            "MINA_BROKER_URL": self.amqp_url or self.redis_url,
            "MINA_REDIS_URL": self.redis_url,
            "PORT": str(self.web_port),
            "PYTHONUNBUFFERED": "1",
        }

    def build(self) -> None:
        data = self.tmp / "redis"
        data.mkdir(exist_ok=True)
        redis_cmd = ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1"]
        redis_cmd += ["--dir", str(data), "--appendonly", "yes", "--appendfsync", "always"]
        redis_cmd += ["--save", "", "--maxmemory-policy", "noeviction"]
        self._add("redis", redis_cmd, "Ready to accept connections")
        web = [str(BIN / "gunicorn"), "-c", "python:api.gunicorn_config", "-w", "1"]
        web += ["--threads", "64", "-b", f"127.0.0.1:{self.web_port}", "api:create_app()"]
        self._add("web", web, "Booting worker")
        for n in range(self.workers):
            self._add(f"worker-{n}", [str(BIN / "mina"), "worker"], "is ready for action")
        for n in range(self.schedulers):
            self._add(f"scheduler-{n}", [str(BIN / "mina"), "-v", "scheduler"], None)

    def _add(self, name: str, cmd: list[str], ready: str | None) -> None:
        self.procs[name] = Proc(name, cmd, self.env(), self.tmp / f"{name}.log", ready)

    def up(self) -> None:
        self.build()
        self.procs["redis"].start()
        self.start_web()
        for name, proc in self.procs.items():
            if name.startswith(("worker", "scheduler")):
                proc.start()

    def start_web(self) -> None:
        self.procs["web"].start()
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"web not healthy:\n{self.procs['web'].tail()}")
            time.sleep(0.2)

    def leader(self) -> str | None:
        """The running scheduler that logged taking the lock (`leader: … holds the …`) since it
        started, and not losing it since."""
        for name, proc in self.procs.items():
            if name.startswith("scheduler") and proc.popen is not None:
                text = proc.since_start()
                gained = text.rfind(": leader: ")
                lost = max(text.rfind("no longer the leader"), text.rfind("leadership lost"))
                if gained > lost:
                    return name
        return None

    def down(self) -> None:
        for proc in self.procs.values():
            proc.kill(signal.SIGTERM)

    def tails(self) -> str:
        return "\n".join(p.tail(25) for p in self.procs.values())


def rabbitmq_vhost(name: str, *, delete: bool = False) -> str:
    """A vhost of its own on the machine's RabbitMQ (queues of other runs stay apart)."""
    if delete:
        subprocess.run(["rabbitmqctl", "delete_vhost", name], capture_output=True, timeout=60)
        return ""
    for cmd in (["add_vhost", name], ["set_permissions", "-p", name, "guest", ".*", ".*", ".*"]):
        done = subprocess.run(["rabbitmqctl", *cmd], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    return f"amqp://guest:guest@127.0.0.1:5672/{name}"
