"""Spec of scripts/gpu-check.sh on a machine without CUDA: it runs what it can, writes its
folder, says the GPU parts were skipped, and stops a part that runs past its budget.

The H200 it is written for has no gradio and no plotly, so the run here hides both from Python
(a sitecustomize on PYTHONPATH): the engine, loader, tests and bench must not need them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu-check.sh"
PARTS = ["env", "nvidia-smi", "gpu tests", "bench 7b"]
HIDE = '''
import sys

class Absent:
    """As on the GPU machine: gradio and plotly are not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("gradio", "plotly"):
            raise ModuleNotFoundError(f"No module named {name!r}")

sys.meta_path.insert(0, Absent())
'''


def _check(out: Path, python: str, extra_path: Path | None = None, **env) -> tuple[int, list]:
    """Run the script; its exit status and summary lines as (part, status, detail)."""
    paths = [str(extra_path)] if extra_path else []
    environ = {**os.environ, "PDIFF_PYTHON": python, "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join(paths + [os.environ.get("PYTHONPATH", "")]), **env}
    proc = subprocess.run(["bash", str(SCRIPT), str(out)], cwd=out.parent, env=environ,
                          capture_output=True, text=True, timeout=300)
    lines = [(ln[:11].strip(), ln[12:20].strip(), ln[21:]) for ln in proc.stdout.splitlines()]
    assert (out / "summary.txt").read_text() == proc.stdout
    return proc.returncode, lines


@pytest.mark.skipif(torch.cuda.is_available(),
                    reason="on a GPU machine this is the GPU check itself: run the script")
def test_without_cuda_the_check_runs_what_it_can_and_says_gpu_parts_were_skipped(tmp_path):
    """Without CUDA (and without gradio and plotly) the script exits 0 with one line per part:
    env ok, the gpu-marked tests collected and every one skipped for "no CUDA device", the bench
    shape path run as a CPU smoke, and a last line saying the GPU parts were skipped. Its folder
    holds the env, nvidia-smi and test outputs, and no GPU report."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(HIDE)
    rc, lines = _check(tmp_path / "out", sys.executable, hide)
    out = tmp_path / "out"
    assert rc == 0, lines
    assert [p for p, _, _ in lines] == PARTS + ["GPU parts"]
    status = {p: s for p, s, _ in lines}
    assert status == {"env": "ok", "nvidia-smi": status["nvidia-smi"], "gpu tests": "skipped",
                      "bench 7b": "skipped", "GPU parts": "skipped"}
    assert "gradio MISSING" in (out / "env.txt").read_text()  # hidden, as on the GPU machine
    suite = ET.parse(out / "tests.xml").getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert cases and all(c.find("skipped").get("message").endswith("no CUDA device") for c in cases)
    assert all(c.get("name").endswith("cuda]") for c in cases)  # only the CUDA legs
    assert (out / "cpu-smoke" / "gpu.json").is_file() and not (out / "gpu.json").exists()
    assert (out / "nvidia-smi.txt").is_file() and (out / "bench.log").is_file()


def test_a_part_past_its_budget_is_stopped_and_reported(tmp_path):
    """A part that hangs is stopped at its budget: the summary names the timeout, the parts that
    needed it are skipped, and the script exits 1."""
    hang = tmp_path / "python"
    hang.write_text("#!/bin/sh\nexec sleep 60\n")
    hang.chmod(0o755)
    rc, lines = _check(tmp_path / "out", str(hang), PDIFF_BUDGET_ENV="1")
    parts = {p: (s, d) for p, s, d in lines}
    assert rc == 1
    assert parts["env"][0] == "failed" and "timed out after" in parts["env"][1]
    assert parts["gpu tests"] == parts["bench 7b"] == ("skipped", "the env part failed")
