"""Spec of `python -m pdiff bench`: one invariant per test, on a tiny random checkpoint.

A random tiny model writes nonsense, so these tests check the bookkeeping, not the speedups:
every setting runs and is reported, the frontier is exactly the non-dominated settings, a resume
runs only what is missing, two processes give the rows of one, and `--shape` reports its three
figures on CPU at a shrunk shape.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pdiff.bench import run as bench
from pdiff.bench.prompts import PromptSet
from pdiff.bench.report import summarise
from pdiff.config import ConfigError, GenerationConfig
from pdiff.engine import Engine
from pdiff.notes.data import make_split, write_jsonl

ROOT = Path(__file__).resolve().parent.parent


def _given(prompts: list[str], facts=None, names=None) -> PromptSet:
    """The prompts, with the facts and names their lines give (None: not given)."""
    return PromptSet(prompts, facts or [None] * len(prompts), names or [None] * len(prompts))
GRID = "steps_ratio=1.0,0.5;threshold=none,0.9;threshold_rule=paper,adaptive"
EXPECTED = {
    "pd:steps_ratio=1.0,threshold=none", "pd:steps_ratio=0.5,threshold=none",
    "pd:steps_ratio=1.0,threshold=0.9,threshold_rule=paper",
    "pd:steps_ratio=1.0,threshold=0.9,threshold_rule=adaptive",
    "pd:steps_ratio=0.5,threshold=0.9,threshold_rule=paper",
    "pd:steps_ratio=0.5,threshold=0.9,threshold_rule=adaptive",
    "ar", "diffusion",
}
SEEDS = (0, 1)


def _args(ckpt, prompts, out, *extra) -> list[str]:
    return ["--model", str(ckpt), "--prompts", str(prompts), "--out", str(out), "--grid", GRID,
            "--seeds", ",".join(map(str, SEEDS)), "--max-new-tokens", "32",
            "--diffusion-max-new-tokens", "16", "--threads", "1", *extra]


def _rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]


@pytest.fixture(autouse=True, scope="module")
def _restore_threads():
    """The benchmark runs with --threads 1 (steadier on a shared machine); other tests do not."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def prompts(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    write_jsonl(make_split("heldout", 3), path)
    return path


@pytest.fixture(scope="module")
def done(tiny_ckpt, prompts, tmp_path_factory) -> tuple[Path, list[str]]:
    """One finished benchmark of the small grid: (its folder, its arguments)."""
    out = tmp_path_factory.mktemp("bench") / "out"
    args = _args(tiny_ckpt, prompts, out, "--warmup", "0")
    bench.main(args)
    return out, args


def test_every_setting_is_run_and_reported(done):
    """runs.jsonl, summary.json, summary.md and frontier.html hold exactly the grid's planned
    settings (threshold_rule only with a threshold) plus the AR and diffusion baselines, each
    setting with one row per prompt and seed."""
    out, _ = done
    rows = _rows(out)
    summary = json.loads((out / "summary.json").read_text())
    assert {r["setting"] for r in rows} == EXPECTED
    assert {e["setting"] for e in summary["settings"]} == EXPECTED
    assert all(e["runs"] == 3 * len(SEEDS) for e in summary["settings"])
    assert len({(r["setting"], r["prompt"], r["seed"]) for r in rows}) == len(rows) == 8 * 3 * len(SEEDS)
    md, html = (out / "summary.md").read_text(), (out / "frontier.html").read_text()
    assert "quality signal: agreement" in md and "capped at 16" in md
    for key in EXPECTED:
        assert f"| `{key}` |" in md and key in html


def _configs(settings) -> set:
    return {GenerationConfig(mode=s.mode, **s.knobs) for s in settings}


def test_the_old_grid_spelling_names_settings_as_before_and_runs_todays_configs():
    """A grid that spells the schedule as before `schedule` was a knob (threshold=none for the
    reference, threshold_rule for the rule; the README's and docs/bench's) names its settings as
    they were named, so older runs.jsonl files resume, and runs the same configs as the grid
    written with `schedule`, whose reference settings leave out the threshold they do not read."""
    old = bench.make_settings(bench.parse_grid(GRID), diffusion=False)
    assert {s.key for s in old} == EXPECTED - {"diffusion"}
    assert all("threshold_rule" not in s.knobs for s in old)
    new = bench.make_settings(bench.parse_grid(
        "steps_ratio=1.0,0.5;schedule=reference,paper,adaptive;threshold=0.9"), diffusion=False)
    assert {s.key for s in new} == {*(f"pd:steps_ratio={r},schedule=reference" for r in ("1.0", "0.5")),
                                    *(f"pd:steps_ratio={r},schedule={s},threshold=0.9"
                                      for r in ("1.0", "0.5") for s in ("paper", "adaptive")), "ar"}
    assert _configs(old) == _configs(new) and len(_configs(new)) == len(new)
    docs = json.loads((ROOT / "docs" / "bench" / "summary.json").read_text())
    grid = docs["command"].split("--grid '")[1].split("'")[0]  # the README's grid, as docs/bench ran it
    assert [s.key for s in bench.make_settings(bench.parse_grid(grid), diffusion=False)] == [
        e["setting"] for e in docs["settings"]]


def test_a_grid_naming_the_schedule_twice_is_refused():
    """schedule and its old name threshold_rule in one grid: a ConfigError that names the old one."""
    with pytest.raises(ConfigError, match="threshold_rule"):
        bench.make_settings(bench.parse_grid("schedule=paper;threshold_rule=adaptive"), diffusion=False)


def test_settings_are_interleaved_per_prompt_and_seed_in_rotated_order(done):
    """Runs finish one (prompt, seed) group at a time, every setting inside each group, and the
    group's first setting rotates, so no setting always runs first."""
    out, _ = done
    rows = sorted(_rows(out), key=lambda r: r["finished"])
    groups = [(r["prompt"], r["seed"]) for r in rows]
    blocks = [groups[i:i + len(EXPECTED)] for i in range(0, len(groups), len(EXPECTED))]
    assert all(len(set(b)) == 1 for b in blocks) and len({b[0] for b in blocks}) == len(blocks)
    firsts = [rows[i]["setting"] for i in range(0, len(rows), len(EXPECTED))]
    assert len(set(firsts)) == len(blocks)


def test_frontier_is_exactly_the_non_dominated_settings(done):
    """A setting is on the frontier iff no other setting is at least as fast and as good and
    strictly better in one (median latency, mean quality)."""
    out, _ = done
    table = json.loads((out / "summary.json").read_text())["settings"]

    def dominated(e) -> bool:
        return any(o["latency_median"] <= e["latency_median"] and o["quality"] >= e["quality"]
                   and (o["latency_median"] < e["latency_median"] or o["quality"] > e["quality"])
                   for o in table)

    front = {e["setting"] for e in table if e["frontier"]}
    assert front and front == {e["setting"] for e in table if not dominated(e)}
    assert front == set(json.loads((out / "summary.json").read_text())["frontier"])


def test_speedups_quality_changes_and_headline_are_computed_against_ar():
    """Speedup = AR median latency / the setting's; quality change in points (x100) and in %;
    the headline is the fastest planned setting within 1 point of AR, and within 5%."""
    S = bench.Setting
    settings = [S("pd:a", "planned"), S("pd:b", "planned"), S("pd:c", "planned"), S("ar", "autoregressive")]
    lat = {"pd:a": [1.0, 3.0], "pd:b": [0.5, 1.5], "pd:c": [0.25, 0.75], "ar": [2.0, 4.0]}
    texts = {"pd:a": "x y z w", "pd:b": "x y z q", "pd:c": "q r s t", "ar": "x y z w"}
    rows = [dict(setting=k, prompt=p, seed=0, latency=lat[k][p], text=texts[k], confidence=None,
                 forward_passes=1, critical_path=1, tokens_per_forward=1.0, plan_tokens=1, spans=1,
                 rounds=1, generated_tokens=4) for k in lat for p in (0, 1)]
    got = {e["setting"]: e for e in summarise(rows, settings, _given(["p0", "p1"]), "agreement")["settings"]}
    assert got["pd:b"]["speedup_median_latency"] == pytest.approx(3.0 / 1.0)
    assert got["pd:b"]["speedup_per_prompt_median"] == pytest.approx(((2 / 0.5) + (4 / 1.5)) / 2)
    assert got["pd:b"]["quality"] == pytest.approx(0.75)  # F1 of 3 shared words out of 4
    assert got["pd:b"]["quality_change_points"] == pytest.approx(-25.0)
    assert got["pd:b"]["quality_change_percent"] == pytest.approx(-25.0)
    head = summarise(rows, settings, _given(["p0", "p1"]), "agreement")["headline"]
    assert head["matched"]["setting"] == "pd:a" and head["matched"]["speedup_median_latency"] == 1.5
    assert head["within_5_percent"]["setting"] == "pd:a"  # pd:b is 25% worse, pd:c 100%


def test_the_checker_marks_each_settings_share_of_clean_answers():
    """Under the checker, a setting's "clean format" is the share of its answers with no repeated
    sentence (the checker's format_ok), and its quality is halved for those; other signals have none."""
    from pdiff.notes.checker import score

    S = bench.Setting
    settings = [S("pd:a", "planned"), S("ar", "autoregressive")]
    prompt = "Write about the city Velora. Facts: country: Dramen; river: the Osk."
    clean = "Velora lies in Dramen. It sits on the Osk."
    stutter = clean + " It sits on the Osk."
    texts = {("pd:a", 0): clean, ("pd:a", 1): stutter, ("ar", 0): clean, ("ar", 1): clean}
    def rows():
        return [dict(setting=k, prompt=p, seed=0, latency=1.0, text=texts[k, p], confidence=0.5,
                     forward_passes=1, critical_path=1, tokens_per_forward=1.0, plan_tokens=1, spans=1,
                     rounds=1, generated_tokens=4) for k, p in texts]

    got = {e["setting"]: e
           for e in summarise(rows(), settings, _given([prompt, prompt]), "checker")["settings"]}
    flags = [score(prompt, texts["pd:a", p]).format_ok for p in (0, 1)]
    assert flags == [True, False]  # the premise: the checker reads the second as a stutter
    assert got["pd:a"]["format_ok"] == pytest.approx(0.5) and got["ar"]["format_ok"] == 1.0
    assert got["pd:a"]["quality"] < got["ar"]["quality"]
    other = summarise(rows(), settings, _given([prompt, prompt]), "confidence")["settings"]
    assert all(e["format_ok"] is None for e in other)


def test_the_checker_scores_against_given_facts_and_counts_invented_answers():
    """Under the checker with given facts, quality is judged against those facts (the prompt has
    none to read), and a setting's "invented" is the share of its answers that state a fact the
    notes do not give."""
    from pdiff.notes.checker import invented_facts, parse_facts, score
    from pdiff.notes.data import Fact

    S = bench.Setting
    settings = [S("pd:a", "planned"), S("ar", "autoregressive")]
    prompt, given = "Write about a person named Aro.", (Fact("job", "baker"), Fact("age", "40"))
    clean = "Aro works full time as a baker. Aro is 40 years old."
    texts = {("pd:a", 0): clean, ("pd:a", 1): clean + " Aro is married to Bob.", ("ar", 0): clean,
             ("ar", 1): clean}
    rows = [dict(setting=k, prompt=p, seed=0, latency=1.0, text=texts[k, p], confidence=0.5,
                 forward_passes=1, critical_path=1, tokens_per_forward=1.0, plan_tokens=1, spans=1,
                 rounds=1, generated_tokens=4) for k, p in texts]
    got = {e["setting"]: e for e in summarise(rows, settings, _given([prompt, prompt], [given, given]),
                                              "checker")["settings"]}
    flags = [bool(invented_facts(prompt, texts["pd:a", p], given)) for p in (0, 1)]
    assert parse_facts(prompt) == () and flags == [False, True]  # the premises
    assert got["pd:a"]["invented"] == pytest.approx(0.5) and got["ar"]["invented"] == 0.0
    assert got["ar"]["quality"] == score(prompt, clean, given).value > 0.0
    assert got["pd:a"]["quality"] < got["ar"]["quality"]


def test_a_prompts_line_with_malformed_facts_is_refused(tmp_path):
    """A "facts" that is not a list of [key, value] string pairs: a ValueError naming its line."""
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"instruction": "Write.", "facts": [["age", "40"]]}) + "\n"
                    + json.dumps({"instruction": "Write.", "facts": [["age"]]}) + "\n")
    with pytest.raises(ValueError, match="line 2"):
        bench.read_prompts(path, None)


def test_the_bench_checks_answers_against_the_facts_a_prompts_line_gives(tiny_ckpt, tmp_path):
    """A --prompts line's "facts" are what the checker scores against, at run time (runs.jsonl)
    and in the summary: a word of the answer given as a fact's value is stated, where the
    prompt itself has no fact to read; the summary reports each setting's invented share."""
    from pdiff.notes.checker import fact_stated, invented_facts, score
    from pdiff.notes.data import Fact

    prompt = "Write a short text about the sea."
    def run(out, line: dict) -> list[dict]:
        (tmp_path / f"{out}.jsonl").write_text(json.dumps({"instruction": prompt, **line}) + "\n")
        bench.main(["--model", str(tiny_ckpt), "--prompts", str(tmp_path / f"{out}.jsonl"), "--out",
                    str(tmp_path / out), "--grid", "steps_ratio=1.0", "--no-diffusion-baseline",
                    "--max-new-tokens", "24", "--threads", "1", "--warmup", "0", "--quality", "checker"])
        return _rows(tmp_path / out)

    first = run("parsed", {})
    assert all(r["quality"] == 0.0 for r in first)  # the premise: the prompt gives no facts
    word = next(w for r in first for w in re.findall(r"\w+", r["text"])  # a random model: "H;H;"
                if fact_stated(Fact("motto", w), r["text"]))
    given = (Fact("motto", word), Fact("nickname", "Zorblat"))
    rows = run("given", {"facts": [[f.key, f.value] for f in given]})
    assert {r["setting"]: r["text"] for r in rows} == {r["setting"]: r["text"] for r in first}
    for r in rows:
        assert r["quality"] == score(prompt, r["text"], given).value
    assert max(r["quality"] for r in rows) > 0.0
    summary = json.loads((tmp_path / "given" / "summary.json").read_text())
    assert summary["prompts_with_facts"] == 1
    for e in summary["settings"]:
        texts = [r["text"] for r in rows if r["setting"] == e["setting"]]
        assert e["quality"] == pytest.approx(sum(score(prompt, t, given).value for t in texts) / len(texts))
        assert e["invented"] == sum(bool(invented_facts(prompt, t, given)) for t in texts) / len(texts)
    assert "| invented |" in (tmp_path / "given" / "summary.md").read_text()


def test_an_existing_run_is_not_overwritten_without_resume(done, tmp_path):
    """Pointing a new benchmark at a folder with runs exits with status 2 and changes nothing."""
    out, args = done
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    before = (copy / "runs.jsonl").read_text()
    with pytest.raises(SystemExit) as exit_:
        bench.main([a if a != str(out) else str(copy) for a in args])
    assert exit_.value.code == 2 and (copy / "runs.jsonl").read_text() == before


def test_resume_runs_only_the_missing_rows(done, tmp_path, monkeypatch):
    """After an interruption (summaries gone, runs.jsonl cut to 10 rows), --resume calls the
    engine once per missing row, keeps the 10 finished rows as they were, and completes the set."""
    out, args = done
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    full = _rows(copy)
    for name in ("summary.json", "summary.md", "frontier.html"):
        (copy / name).unlink()
    kept = (copy / "runs.jsonl").read_text().splitlines(keepends=True)[:10]
    (copy / "runs.jsonl").write_text("".join(kept))
    calls = []
    original = Engine.generate_text
    monkeypatch.setattr(Engine, "generate_text",
                        lambda self, prompt, config: calls.append(config) or original(self, prompt, config))
    bench.main([a if a != str(out) else str(copy) for a in args] + ["--resume"])
    assert len(calls) == len(full) - 10
    rows = {(r["setting"], r["prompt"], r["seed"]): r for r in _rows(copy)}
    assert set(rows) == {(r["setting"], r["prompt"], r["seed"]) for r in full}
    assert all(rows[(r["setting"], r["prompt"], r["seed"])] == r for r in map(json.loads, kept))
    assert (copy / "summary.json").is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_accelerate_processes_give_the_rows_of_one(tiny_ckpt, prompts, tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2` (torchrun; gloo on CPU) shards prompts
    over both ranks and gathers rows equal to a single process's: same settings, prompts, seeds,
    texts and token counts at temperature 0."""
    def args(out):
        return ["--model", str(tiny_ckpt), "--prompts", str(prompts), "--out", str(out),
                "--grid", "steps_ratio=1.0", "--no-diffusion-baseline", "--max-new-tokens", "24",
                "--threads", "1", "--warmup", "0"]

    bench.main(args(tmp_path / "one"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "--main_process_port", str(_free_port()), "-m", "pdiff", "bench", *args(tmp_path / "two")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]

    def view(rows):
        return {(r["setting"], r["prompt"], r["seed"]):
                (r["text"], r["generated_tokens"], r["forward_passes"], r["plan_tokens"]) for r in rows}

    one, two = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert {r["rank"] for r in two} == {0, 1}
    assert len(two) == 2 * 3 and view(two) == view(one)
    assert not list((tmp_path / "two").glob("runs.rank*.jsonl"))  # gathered into runs.jsonl


def test_shape_runs_shrunk_on_cpu_and_writes_its_report(tmp_path):
    """--shape dream-7b on CPU shrinks (and says so), times (a) the AR step on static shapes, by
    the peer and eager, (b) the denoise step on static shapes and eager, and (c) the
    forced-plan engine run vs AR both ways, judges the targets, and writes gpu.json and gpu.md."""
    bench.main(["--shape", "dream-7b", "--device", "cpu", "--out", str(tmp_path), "--iters", "2",
                "--context", "128", "--prefix", "64", "--span-len", "8"])
    rep = json.loads((tmp_path / "gpu.json").read_text())
    assert rep["device"] == "cpu" and "shrunk" in rep["notes"][0]
    assert rep["model"]["num_hidden_layers"] < 28
    a, b = rep["ar_step"], rep["denoise_step"]
    assert list(a) == ["graphs", "peer", "eager"] and all(a[w]["median_ms"] > 0 for w in a)
    assert a["peer"]["iters"] == 2 and not a["peer"]["compiled"]  # the peer's leg, eager on CPU
    assert b["graphs"]["median_ms"] > 0 and b["eager"]["median_ms"] > 0
    assert b["tokens"] == 3 * (8 + 2) and b["bucket"] == 32
    assert rep["graph_forwards"]["static"] > 0 and rep["capture"]["per_width"] == {}  # CPU: uncaptured
    for way in ("graphs", "eager"):
        e2e = rep["end_to_end"][way]
        assert e2e["spans_per_round"] == [2, 1] and e2e["pd_denoise_steps"] == 2 * 8  # the plan was used
        assert e2e["ar_seconds"] > 0 and e2e["speedup_forced_plan"] > 0
    assert [t["key"] for t in rep["targets"]] == ["ar_floor", "ar_jitter", "ar_peer", "denoise",
                                                  "end_to_end"]
    assert "assumed 4.8 TB/s" in rep["bandwidth"]  # no card name to look up
    text = (tmp_path / "gpu.md").read_text()
    assert text.index("pdiff on graphs") < text.index("peer (transformers") < text.index("pdiff eager")
    assert "(a) AR decode step" in text and "## Targets" in text


@pytest.mark.parametrize("name,tbps", [("NVIDIA H200", 4.8), ("NVIDIA H100 80GB HBM3", 3.35),
                                       ("NVIDIA H100 PCIe", 2.0), ("NVIDIA GH200 480GB", 4.0)])
def test_the_floor_reads_the_cards_bandwidth_by_its_name(name, tbps):
    """The floor's bandwidth comes from the card's name; --hbm-tbps overrides it."""
    from pdiff.bench.shapes import bandwidth

    assert bandwidth(None, name)[0] == tbps
    assert bandwidth(2.5, name) == (2.5, "2.5 TB/s given by --hbm-tbps")


def test_the_7b_floor_is_about_4_2_ms_on_an_h100_and_3_on_an_h200():
    """The bytes-read floor of the dream-7b AR step at 1,000 tokens: about 4.2 ms at an H100's
    3.35 TB/s, about 2.96 ms at an H200's 4.8 TB/s (meta device: no memory)."""
    from accelerate import init_empty_weights

    from pdiff.bench.shapes import bandwidth, roofline
    from pdiff.model import PRESETS, DreamModel

    with init_empty_weights():
        model = DreamModel(PRESETS["dream-7b"]).to(torch.bfloat16)
    h100, h200 = (roofline(model, 1000, bandwidth(None, n)[0]) for n in ("NVIDIA H100 80GB HBM3", "H200"))
    assert h100["bytes_read_ms"] == pytest.approx(4.24, abs=0.05)
    assert h200["bytes_read_ms"] == pytest.approx(2.96, abs=0.03)


def test_the_7b_roofline_is_15_gb_and_about_3_ms():
    """The dream-7b shape holds about 15.2 GB of bf16 weights: about 3.2 ms per AR step at
    4.8 TB/s (built on the meta device: no memory, no download)."""
    from accelerate import init_empty_weights

    from pdiff.bench.shapes import roofline
    from pdiff.model import PRESETS, DreamModel

    with init_empty_weights():
        model = DreamModel(PRESETS["dream-7b"]).to(torch.bfloat16)
    r = roofline(model, 1000, 4.8)
    assert r["weight_bytes"] / 1e9 == pytest.approx(15.2, abs=0.1)
    assert r["all_weights_ms"] == pytest.approx(3.17, abs=0.03)
    assert r["bytes_read_ms"] < r["all_weights_ms"]


def test_overhead_profile_counts_every_forward(engine):
    """The overhead profiler times exactly the run's forwards, and they fit inside the engine time."""
    from pdiff.bench.overhead import measure

    cfg = engine.config(temperature=0.0, max_new_tokens=60,
                        plan="<promise>-<topic>a 2</topic><promise>-<topic>b 1</topic><|im_end|>")
    figures = measure(engine, "Write.", cfg, repeats=2)
    assert figures["forwards"] == engine.generate_text("Write.", cfg).stats.forward_passes
    assert figures["denoise_steps"] == 20
    assert 0 < figures["forward_seconds"] <= figures["engine_seconds"] * 1.05
    assert "forward" not in engine.model.__dict__  # the timing hook is removed


def test_the_probes_report_each_settings_share_of_exact_names_and_numbers():
    """With a line's name and facts, a setting's "name exact" is the share of its answers that name
    the entity exactly, and "numbers exact" the share that copy every given number and no other."""
    from pdiff.notes.data import Fact

    S = bench.Setting
    settings = [S("pd:a", "planned"), S("ar", "autoregressive")]
    prompt = "Write about the city Qelora. Facts: population: 45,000; founded: 1620."
    given = (Fact("population", "45,000"), Fact("founded", "1620"))
    right = "Qelora is home to about 45,000 people. It was founded in 1620."
    texts = {("pd:a", 0): right, ("pd:a", 1): right.replace("Qelora", "Qelqelora"),
             ("ar", 0): right, ("ar", 1): right.replace("1620", "1621")}
    def rows():
        return [dict(setting=k, prompt=p, seed=0, latency=1.0, text=texts[k, p], confidence=0.5,
                     forward_passes=1, critical_path=1, tokens_per_forward=1.0, plan_tokens=1, spans=1,
                     rounds=1, generated_tokens=4) for k, p in texts]
    both = _given([prompt, prompt], [given, given], ["Qelora", "Qelora"])
    got = {e["setting"]: e for e in summarise(rows(), settings, both, "checker")["settings"]}
    assert got["pd:a"]["name_exact"] == 0.5 and got["pd:a"]["numbers_exact"] == 1.0
    assert got["ar"]["name_exact"] == 1.0 and got["ar"]["numbers_exact"] == 0.5
    unnamed = summarise(rows(), settings, _given([prompt, prompt]), "checker")["settings"]
    assert all(e["name_exact"] is None and e["numbers_exact"] is None for e in unnamed)


def test_the_probe_writes_its_prompts_with_names_and_facts(tiny_ckpt, tmp_path, capsys):
    """`--probe N` runs N probe prompts (held-out names), writes them with their names and facts,
    and reports the copy probe for every setting."""
    from pdiff.notes.wide import probe_split

    bench.main(["--model", str(tiny_ckpt), "--probe", "2", "--out", str(tmp_path / "probe"), "--grid",
                "steps_ratio=1.0", "--no-diffusion-baseline", "--max-new-tokens", "16", "--threads", "1",
                "--warmup", "0", "--quality", "checker"])
    lines = [json.loads(x) for x in (tmp_path / "probe" / "prompts.jsonl").read_text().splitlines()]
    assert [(x["instruction"], x["name"]) for x in lines] == [(e.prompt, e.name) for e in probe_split(2)]
    summary = json.loads((tmp_path / "probe" / "summary.json").read_text())
    assert summary["prompts_with_names"] == 2 and summary["prompts_with_facts"] == 2
    assert all(e["name_exact"] is not None for e in summary["settings"])
    with pytest.raises(SystemExit):
        bench.main(["--model", str(tiny_ckpt), "--probe", "2", "--prompts", str(tmp_path / "probe" /
                    "prompts.jsonl"), "--out", str(tmp_path / "both")])
    assert "give --probe or --prompts, not both" in capsys.readouterr().err
