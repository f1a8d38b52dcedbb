"""The training loop: a stopped run resumes exactly, and data parallelism under `accelerate
launch` follows the loss curve of one process with the same global batch."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pdiff.train.loop import PRESETS_TRAIN, STATE_FILE, train

ROOT = Path(__file__).resolve().parents[1]
SMOKE = dataclasses.replace(PRESETS_TRAIN["smoke"], steps=6, warmup=2)
# Two processes add their shares of a step's loss in another order than one process does:
# float32 rounding, compounded over 6 optimizer steps.
LOSS_TOLERANCE = 1e-3


def _losses(folder: Path) -> list[float]:
    return torch.load(folder / STATE_FILE, weights_only=False)["losses"]


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    """A run stopped after 3 of 6 steps and resumed takes the same steps as one that never
    stopped: same losses, same final weights."""
    whole = train(SMOKE, tmp_path / "whole", progress=False)
    part = train(SMOKE, tmp_path / "part", progress=False, stop_after=3)
    assert part["steps_done"] == 3 and len(_losses(tmp_path / "part")) == 3
    resumed = train(SMOKE, tmp_path / "part", progress=False, resume=True)
    assert resumed["steps_done"] == 6
    assert resumed["losses"] == whole["losses"]
    a = load_file(tmp_path / "whole" / "model.safetensors")
    b = load_file(tmp_path / "part" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_other_settings(tmp_path):
    """Resuming with another configuration (here the learning rate) is refused by name."""
    train(SMOKE, tmp_path, progress=False, stop_after=2)
    with pytest.raises(SystemExit, match="other settings"):
        train(dataclasses.replace(SMOKE, lr=1e-4), tmp_path, progress=False, resume=True)


def test_resume_may_change_the_number_of_steps(tmp_path):
    """A run may be shortened or extended on resume: it continues from its saved step, the
    learning rate decays to the new end, and the record lists each session."""
    train(SMOKE, tmp_path, progress=False, stop_after=2)
    record = train(dataclasses.replace(SMOKE, steps=4), tmp_path, progress=False, resume=True)
    assert record["steps_done"] == 4 and len(record["losses"]) == 4
    assert [(s["from_step"], s["steps"]) for s in record["sessions"]] == [(0, 6), (2, 4)]


def test_resume_without_a_saved_state_starts_fresh(tmp_path):
    """`--resume` on an empty folder is a fresh run (so one command starts and continues a run)."""
    record = train(SMOKE, tmp_path / "new", progress=False, resume=True, stop_after=2)
    assert record["steps_done"] == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_follow_the_loss_curve_of_one(tmp_path):
    """`accelerate launch --num_processes 2 -m pdiff train` (gloo on CPU) with the same global
    batch and seed gives one process's loss curve within LOSS_TOLERANCE, and one checkpoint."""
    args = ["--preset", "smoke", "--steps", "6", "--warmup", "2", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    one = subprocess.run([sys.executable, "-m", "pdiff", "train", *args, "--out", str(tmp_path / "one")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "--main_process_port", str(_free_port()), "-m", "pdiff", "train", *args,
         "--out", str(tmp_path / "two")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(a) == len(b) == 6
    assert max(abs(x - y) for x, y in zip(a, b)) < LOSS_TOLERANCE, (a, b)
    assert a[0] != a[-1]  # the curve moved: the comparison is not of two constants
    assert json.loads((tmp_path / "two" / "config.json").read_text())["pdiff"]["processes"] == 2


def test_seconds_sizes_the_run_to_its_time(tmp_path):
    """With `seconds`, the step time of the warm-up sets the number of steps: a run given more
    time takes more steps, the schedule ends on its last step, and the record says so."""
    cfg = dataclasses.replace(SMOKE, steps=1000, warmup=5)
    short = train(cfg, tmp_path / "short", progress=False, seconds=0.0)
    assert short["steps_done"] == short["train_config"]["steps"] == cfg.warmup + 1
    # three times the whole short run leaves about twice its time after the warm-up: many steps
    # on an idle machine or a busy one
    budget = 3 * short["seconds"]
    longer = train(cfg, tmp_path / "longer", progress=False, seconds=budget)
    assert cfg.warmup + 1 < longer["steps_done"] == longer["train_config"]["steps"] < 1000
    assert longer["sessions"][-1]["seconds"] == budget
    with pytest.raises(SystemExit, match="cannot resume"):
        train(cfg, tmp_path / "longer", progress=False, resume=True, seconds=10.0)


def test_the_gpu_training_script_packs_every_run(tmp_path):
    """scripts/gpu-train.sh (the bundled models' GPU rounds), here on the CPU with tiny batches:
    every run of its table trains for its seconds and comes back as NAME.tgz holding its weights
    and a config.json whose record says the run ended where `--seconds` sized it."""
    import tarfile

    env = {**os.environ, "PDIFF_PYTHON": sys.executable, "PDIFF_RUNS": str(tmp_path / "runs"),
           "PDIFF_TRAIN_ARGS": "--batch-size 2 --warmup 4 --examples 40 --threads 1",
           "PDIFF_TRAIN_GRACE": "500"}  # five start-ups on a busy 2-core machine
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu-train.sh"), str(tmp_path / "out"), "1"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = re.findall(r"^\s+\[([\w-]+)\]=", (ROOT / "scripts" / "gpu-train.sh").read_text(), re.M)
    assert len(runs) >= 2
    for name in runs:
        with tarfile.open(tmp_path / "out" / f"{name}.tgz") as tar:
            assert sorted(tar.getnames()) == ["config.json", "model.safetensors"]
            record = json.load(tar.extractfile("config.json"))["pdiff"]
        assert record["steps_done"] == record["train_config"]["steps"] > 4
        assert record["sessions"][-1]["seconds"] == 1.0
