"""The server as a child process on loopback (``python app.py``), for the API benchmark and the server tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from core.config import REPO_ROOT
from core.errors import UserError


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    """A running server: its process, base URL and log file."""

    proc: subprocess.Popen
    url: str
    log: Path

    def rss_mb(self) -> float:
        """The server's resident memory in MiB (from /proc)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        raise UserError(f"The server process {self.proc.pid} has no resident memory figure.")

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM the server's process group, SIGKILL after `timeout_s`."""
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=timeout_s)


def start(env: dict[str, str], log: Path, port: int | None = None, timeout_s: float = 120.0) -> ServerProcess:
    """Start ``python app.py`` on 127.0.0.1 (a free port unless given) and wait until ``/api/v1/health`` answers
    ``ok`` (a server still ``degraded`` at the deadline is stopped, and the error quotes its problems)."""
    port = port or free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=REPO_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
    )
    handle.close()
    server = ServerProcess(proc=proc, url=f"http://127.0.0.1:{port}", log=log)
    deadline = time.monotonic() + timeout_s
    problems: list[str] = []
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise UserError(f"The server exited with code {proc.returncode} before answering: {tail}")
        try:
            with urllib.request.urlopen(f"{server.url}/api/v1/health", timeout=2) as response:
                body = json.loads(response.read())
                if response.status == 200 and body["status"] == "ok":
                    return server
                problems = list(body.get("problems") or [])
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    server.stop()
    if problems:
        raise UserError(f"The server on {server.url} was still degraded after {timeout_s:.0f} s: {' '.join(problems)} "
                        f"(log: {log}).")
    raise UserError(f"The server did not answer on {server.url} within {timeout_s:.0f} s (log: {log}).")
