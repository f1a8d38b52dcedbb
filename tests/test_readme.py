"""Every command line the README shows works as written.

The README's command lines are its indented code lines (backslash continuations joined). Each is
run literally by bash, from a copy of the repository's top level (symlinks) where `.venv` is the
virtual environment running these tests, so `.venv/bin/python ...` means what it says. Each
command is in exactly one class below; a new README command that none names fails the test.
- RUN: runs to the end here, exit status 0, within RUN_LIMIT seconds.
- SERVE: the app, as the set-up lines launch it last; started, its page fetched, stopped.
- START: long runs (training, benchmarks): started, must still be running or have exited 0
  after START_LIMIT seconds, then stopped.
- SYNTAX: cannot run here (a GPU, the hub, Docker, PyTorch's CPU index, pip downloads, the whole
  suite): bash parses it, and its pip options are ones pip's own --help lists.
The RUN and START commands of one process (one thread each: OMP_NUM_THREADS=1) run in the
background two at a time (`lanes`), as many as the CI machine's cores, each on a core of its own as
it would be alone; a two-process (accelerate) command and the app run with nothing beside them.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.apphelpers import ROOT, START_TIMEOUT, free_port

README = (ROOT / "README.md").read_text()
RUN_LIMIT = 180.0
START_LIMIT = 20.0
LANES = 2  # one-process commands at once: the CI machine's cores

RUN = (r"-m pdiff generate --prompt ", r"-m pdiff curve ")
SERVE = (r"^\.venv/bin/python app\.py$",)
START = (r"-m pdiff train ", r"-m pdiff bench ", r"accelerate\.commands\.launch")
SYNTAX = {
    r"^python3 -m venv \.venv && \.venv/bin/pip install": "installs packages from the network",
    r"^bash scripts/test\.sh$": "runs the whole suite (this test among them)",
    r"^bash scripts/gpu-check\.sh": "the GPU check has its own tests (tests/test_gpu_check.py)",
    r"--device cuda|PDIFF_MODEL=dmisrael/": "needs a GPU and the hub",
    r"^docker ": "needs Docker (the Dockerfile is linted and its CMD served in test_deploy.py)",
}


def readme_commands(text: str = README) -> list[str]:
    """The indented code lines of the README, continuations joined; tables and prose excluded."""
    commands, current = [], ""
    for line in text.splitlines():
        if current:
            current += " " + line.strip()
        elif line.startswith("    ") and line.strip() and not line.lstrip().startswith(("|", "-")):
            current = line.strip()
        else:
            continue
        if current.endswith("\\"):
            current = current[:-1].rstrip()
            continue
        commands.append(current)
        current = ""
    return commands


def kind_of(command: str) -> str:
    if any(re.search(p, command) for p in SYNTAX):
        return "syntax"
    if any(re.search(p, command) for p in SERVE):
        return "serve"
    if any(re.search(p, command) for p in START):
        return "start"
    if any(re.search(p, command) for p in RUN):
        return "run"
    return "unknown"


COMMANDS = readme_commands()
# The set-up lines end by launching the app: that last part runs here as written.
LAUNCHES = [c.split(" && ")[-1] for c in COMMANDS if c.startswith("python3 -m venv")]
ACCELERATE_PORT = 29500  # accelerate launch's default rendezvous port


def _wait_port_free(port: int, limit: float = 60.0) -> None:
    """Bounded wait until a previous launch's rendezvous port can be bound again."""
    import socket

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return
            except OSError:
                time.sleep(1)


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory) -> Path:
    """The repository's top level as symlinks, with `.venv` the running virtual environment;
    `docs` is a copy, so a README command that writes results there (the benchmark's
    `--out docs/bench`) never touches the repository's own."""
    root = tmp_path_factory.mktemp("readme")
    for entry in ROOT.iterdir():
        if entry.name == "docs":
            shutil.copytree(entry, root / entry.name)
        elif entry.name not in (".venv", "runs", "my-model"):
            (root / entry.name).symlink_to(entry)
    (root / ".venv").symlink_to(Path(sys.prefix))
    return root


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PDIFF_", "GRADIO_"))}
    env.update(GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", **extra)
    return env


def _start(command: str, cwd: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the group this test started: bash and its child
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.communicate()[0] or ""


def _run_to_end(command: str, cwd: Path) -> tuple[int, str]:
    """RUN: the command run to its end (bounded by RUN_LIMIT): (exit status, output)."""
    proc = _start(command, cwd, _env())
    try:
        out, _ = proc.communicate(timeout=RUN_LIMIT)
    finally:
        _stop(proc)
    return proc.returncode, out


def _run_for_a_while(command: str, cwd: Path, home: Path) -> tuple[bool, int, str]:
    """START: the command run for START_LIMIT seconds, then stopped: (alive at START_LIMIT,
    exit status, output)."""
    if "accelerate" in command:
        _wait_port_free(ACCELERATE_PORT)
    proc = _start(command, cwd, _env(HOME=str(home)))
    time.sleep(START_LIMIT)
    alive = proc.poll() is None
    out = _stop(proc)
    return alive, proc.returncode, out


def one_process(command: str) -> bool:
    """A command that runs as one process (accelerate launches two)."""
    return "accelerate" not in command


class Lanes:
    """The selected one-process RUN and START commands, run in the background LANES at a time
    (started with the first test that asks); a test takes its command's result, and `drain()`
    waits until none is running."""

    def __init__(self, jobs: list[tuple[str, object]]) -> None:
        self.pool = ThreadPoolExecutor(LANES, thread_name_prefix="readme-lane")
        self.futures: dict[tuple[str, str], Future] = {
            (kind, command): self.pool.submit(job) for (kind, command), job in jobs}

    def result(self, kind: str, command: str):
        return self.futures[(kind, command)].result()

    def drain(self) -> None:
        for future in self.futures.values():
            future.exception()  # waits; a job's error is its own test's

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def test_the_readme_shows_commands_and_each_has_a_class():
    """The README's commands are found, and every one is RUN, SERVE, START or SYNTAX."""
    assert len(COMMANDS) >= 10
    assert [c for c in COMMANDS if kind_of(c) == "unknown"] == []
    assert {kind_of(c) for c in COMMANDS} == {"run", "start", "syntax"}
    assert LAUNCHES and all(kind_of(c) == "serve" for c in LAUNCHES)


def test_the_readme_says_how_long_the_training_preset_takes():
    """Each `train --preset P` command has a data-parallel twin (accelerate), and the README says
    in hours what the preset costs on a CPU, next to where it names the preset."""
    presets = {m[1] for c in COMMANDS if (m := re.search(r"-m pdiff train .*--preset (\w+)", c))}
    assert presets
    for preset in presets:
        twins = [c for c in COMMANDS if "accelerate.commands.launch" in c
                 and re.search(rf"-m pdiff train .*--preset {preset}\b", c)]
        assert twins, f"no data-parallel command for --preset {preset}"
        said = re.search(rf"`train --preset {preset}`[^\n]*\n(?:[^\n]+\n)*", README)
        assert said and re.search(r"\d+ hours", said[0]), f"no time given for --preset {preset}"


@pytest.mark.parametrize("command", COMMANDS)
def test_bash_parses_every_readme_command(command):
    """Each command line is valid bash."""
    result = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_pip_options_in_the_readme_are_pips_and_the_pin_is_unchanged():
    """The set-up lines use only options pip knows, the CPU line names PyTorch's CPU index, and
    requirements.txt still pins torch exactly."""
    setup = [c for c in COMMANDS if ".venv/bin/pip install" in c]
    known = subprocess.run([sys.executable, "-m", "pip", "install", "--help"], capture_output=True,
                           text=True).stdout
    for command in setup:
        for option in re.findall(r"\s(--[a-z-]+)", command.split("pip install", 1)[1].split("&&")[0]):
            assert option in known, option
    assert any("--extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt" in c
               for c in setup)
    assert any(re.search(r"pip install -r requirements\.txt &&", c) for c in setup)
    assert re.search(r"^torch==2\.13\.0$", (ROOT / "requirements.txt").read_text(), re.M)


@pytest.fixture(scope="module")
def lanes(request, repo_copy, tmp_path_factory):
    """The one-process RUN and START commands of the selected tests, started in the background
    LANES at a time (START ones first: their time is fixed); stopped and joined at the end."""
    wanted = {(item.originalname, item.callspec.params["command"]) for item in request.session.items
              if item.module is request.module and "lanes" in item.fixturenames
              and one_process(item.callspec.params.get("command", "accelerate"))}
    jobs = [(("start", c), lambda c=c: _run_for_a_while(c, repo_copy, tmp_path_factory.mktemp("home")))
            for c in COMMANDS if ("test_readme_long_command_starts", c) in wanted]
    jobs += [(("run", c), lambda c=c: _run_to_end(c, repo_copy))
             for c in COMMANDS if ("test_readme_command_runs", c) in wanted]
    background = Lanes(jobs)
    yield background
    background.close()


@pytest.mark.parametrize("command", [c for c in COMMANDS if kind_of(c) == "run"])
def test_readme_command_runs(command, lanes):
    """A README command that can run here exits 0 and prints an answer."""
    returncode, out = lanes.result("run", command)
    assert returncode == 0, out[-3000:]
    assert out.strip()


@pytest.mark.parametrize("command", [c for c in COMMANDS if kind_of(c) == "start"])
def test_readme_long_command_starts(command, repo_copy, tmp_path, lanes):
    """A long README command (training, a benchmark) is still working, or done with status 0,
    after START_LIMIT seconds; then it is stopped."""
    if one_process(command):
        alive, returncode, out = lanes.result("start", command)
    else:  # two processes: the machine's cores to itself
        lanes.drain()
        alive, returncode, out = _run_for_a_while(command, repo_copy, tmp_path)
    assert alive or returncode == 0, out[-3000:]


@pytest.mark.parametrize("command", sorted(set(LAUNCHES)))
def test_readme_app_command_serves_the_page(command, repo_copy, tmp_path, lanes):
    """The README's launch command serves the app's page (on a free port), then is stopped."""
    lanes.drain()  # the app measures its forwards at start-up: nothing runs beside it
    port = free_port()
    proc = _start(command, repo_copy, _env(GRADIO_SERVER_PORT=str(port),
                                           GRADIO_TEMP_DIR=str(tmp_path / "gradio")))
    try:
        deadline, page = time.monotonic() + START_TIMEOUT, ""
        while time.monotonic() < deadline and proc.poll() is None and not page:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
            except OSError:
                time.sleep(0.5)
        assert "<html" in page.lower(), "the app did not serve its page"
    finally:
        out = _stop(proc)
    assert "Traceback" not in out, out[-3000:]
