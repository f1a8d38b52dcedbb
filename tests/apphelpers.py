"""Serve the app for tests, on 127.0.0.1 at a free port: in this process, or as `python app.py`.

- `serve_page` builds the page in this process (app.build_demo) and serves it on gradio's own
  thread: for tests that need a page or a running app (gradio_client, the browser). One page on
  a tiny random checkpoint is shared by the whole test session (`shared_page`).
- `start_command` starts a subprocess (`python app.py`, the Dockerfile's CMD): for tests where the
  server process itself is under test (the queue, Stop, hostile traffic, memory, signals, the
  bind address, start-up settings). Start-up is awaited with a bounded poll; the process,
  started here, is stopped here by its id.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 240.0  # seconds; importing gradio and torch on a busy 2-core machine (niced) is slow

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


@dataclass
class Page:
    url: str
    demo: object  # the gr.Blocks being served

    def stop(self) -> None:
        self.demo.close()


def serve_page(model_dir: Path | str, tmp: Path, **extra: str) -> Page:
    """The app for `model_dir` ("bundled" or a checkpoint folder), built in this process as
    `python app.py` builds it from the same settings, and served until `stop()`. Unlike the
    script, it measures nothing at start-up ("How it works" has the unmeasured forward-cost
    line), keeps its traces under `tmp`, caps no shared cache folder and sets no signal handler.
    Its runs get the app's thread policy (a run's share of the cores, set per worker thread), so
    this process's own torch threads are left as they are."""
    import app
    from pdiff.app.handlers import DemoApp
    from pdiff.app.settings import load_models, settings_from_env
    from pdiff.app.speed import speed_note
    from pdiff.app.trace import TraceStore
    from pdiff.threads import ThreadPolicy, available_cores

    settings = settings_from_env(app_env(model_dir, free_port(), tmp, **extra))
    models = load_models(settings)
    for engine in (models.pd, models.ar):
        if engine is not None:
            engine.threads = ThreadPolicy(available_cores(), settings.concurrency)
    demo_app = DemoApp(models, settings, TraceStore(tmp / "traces"))
    demo = app.build_demo(demo_app, speed_note(None))
    app.launch(demo, demo_app, block=False)
    return Page(demo.local_url, demo)


_PAGE: Page | None = None


def shared_page(request, tmp_path_factory) -> Page:
    """One in-process page on a tiny random checkpoint for the whole test session (the e2e and
    the browser tests share it); closed at session end."""
    global _PAGE
    if _PAGE is None:
        from tests.conftest import write_tiny_checkpoint

        tmp = tmp_path_factory.mktemp("app")
        _PAGE = serve_page(write_tiny_checkpoint(tmp / "ckpt"), tmp)
        request.config.add_cleanup(_PAGE.stop)
    return _PAGE
