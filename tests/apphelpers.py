"""Start the real app (`python app.py`) on a tiny random checkpoint, once per test session.

The server is a subprocess listening on 127.0.0.1 at a free port; start-up is awaited with a
bounded poll, and the process (started here, stopped here by its id) is ended at session end.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 120.0  # seconds; importing gradio and torch on a busy 2-core machine is slow

# A plan the tiny random model cannot write itself: two spans, then a one-span round.
PLAN_ROWS = [[1, "intro", 2, ""], [1, "details", 2, "sync"], [2, "summary", 1, "end"]]
PLAN_TABLE = {"headers": ["round", "topic", "length units", "ends with"], "data": PLAN_ROWS}


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(model_dir: Path | str, port: int, tmp: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PDIFF_", "GRADIO_"))}
    env.update(PDIFF_MODEL=str(model_dir), PDIFF_DEVICE="cpu", PDIFF_MAX_NEW_TOKENS="256",
               PDIFF_SWEEP_LIMIT="2", GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port),
               GRADIO_ANALYTICS_ENABLED="False", GRADIO_TEMP_DIR=str(tmp / "gradio"),
               PYTHONUNBUFFERED="1", **extra)
    return env


def start_server(model_dir: Path | str, tmp: Path) -> Server:
    port = free_port()
    return start_command([sys.executable, "app.py"], app_env(model_dir, port, tmp), port, tmp)


def start_command(cmd: list[str], env: dict, port: int, tmp: Path) -> Server:
    """Run `cmd` in the repository with `env`, and wait (bounded) until it serves its page."""
    log_path = tmp / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = Server(f"http://127.0.0.1:{port}/", proc, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}:\n{server.log()[-3000:]}")
        try:
            with urllib.request.urlopen(server.url, timeout=2) as resp:
                if resp.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"the app did not answer within {START_TIMEOUT:.0f} s:\n{server.log()[-3000:]}")


_SERVER: Server | None = None


def shared_server(request, tmp_path_factory) -> Server:
    """One server for the whole test session (the e2e and the browser tests share it)."""
    global _SERVER
    if _SERVER is None or _SERVER.proc.poll() is not None:
        from tests.conftest import write_tiny_checkpoint

        tmp = tmp_path_factory.mktemp("app")
        model = write_tiny_checkpoint(tmp / "ckpt")
        _SERVER = start_server(model, tmp)
        request.config.add_cleanup(_SERVER.stop)
    return _SERVER
