"""Reliability (issue 8): under load, bad input and faults the demo keeps serving, answers clearly,
and never mixes up users.

Most tests talk to the real app (`python app.py`, a subprocess on 127.0.0.1) through gradio_client
or plain HTTP; a few drive `pdiff.app.handlers.DemoApp` in-process where that is the faster way to
see the same invariant (memory over hundreds of runs, cache release, injected faults). Servers use
tiny random checkpoints, except the 20-client test, which uses the bundled model when it exists.
The soak (`-m slow`) is skipped by the default run. docs/reliability.md maps each case to its test.

    python -m pytest tests/test_reliability.py -q -s          # the default part, figures printed
    python -m pytest tests/test_reliability.py -m slow -s     # the soak (PDIFF_SOAK_SECONDS, 180)
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import errno
import gc
import html
import http.client
import json
import logging
import os
import re
import socket
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

import psutil
import pytest
import torch

from pdiff.app.handlers import DemoApp
from pdiff.app.inputs import MAX_PROMPT_CHARS, PLAN_HEADERS, run_config
from pdiff.app.session import Session
from pdiff.app.settings import Models, settings_from_env
from pdiff.app.trace import TraceStore
from pdiff.config import Knobs
from pdiff.loader import BUNDLED, load_engine
from pdiff.model import KVCache
from pdiff.notes.checker import parse_facts
from pdiff.notes.data import make_split
from tests import apphelpers as H

MASK = "<|mask|>"
TAGS = ("<async>", "</async>", "<sync/>", "<promise>-<topic>", "[PAD]", "<|mask|>", "<|im_end|>")
LEAKS = ("Traceback", 'File "', "site-packages", "/work", "/tmp", "/root", "/home", "/usr")
CAP = 256  # PDIFF_MAX_NEW_TOKENS of the test servers (tests.apphelpers.app_env)
QUEUE_SIZE, CONCURRENCY = 2, 1  # the shared server: a queue that is easy to fill
CLIENTS = 20
LONG = "Tell me about the city Lagil. Facts: country: Dregani; climate: hot."
QUEUE_FULL = "Queue is full! Please try again."  # gradio_client's QueueError for an HTTP 503


# --- helpers ------------------------------------------------------------------------------------


def assert_no_leak(text) -> None:
    """A message shown to a user names no server file and carries no stack trace."""
    found = [s for s in LEAKS if s in str(text)]
    assert not found, f"the message leaks {found}: {str(text)[:400]}"


def wait_for(predicate, limit: float, step: float = 0.02) -> bool:
    """Poll `predicate` until it holds or `limit` seconds pass (bounded); its last value."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def stopped_runs(server) -> int:
    return server.log().count("run stopped")


def settle(server, quiet: float = 0.5, limit: float = 10.0) -> None:
    """Wait (bounded) until no run is being stopped any more: the log's count holds still."""
    deadline = time.monotonic() + limit
    last, since = stopped_runs(server), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.05)
        now = stopped_runs(server)
        if now != last:
            last, since = now, time.monotonic()


def consistent(stats: dict) -> bool:
    return stats["forward_passes"] == (
        stats["plan_tokens"] + stats["denoise_steps"] + stats["prefill_forwards"])


def knobs(length_scale: int, **over) -> dict:
    """Every /generate knob, by name (gradio_client keywords and DemoApp arguments alike)."""
    return {"steps_ratio": 1.0, "threshold": 0.9, "schedule": "reference", "unmask": "entropy",
            "temperature": 0.2, "top_p": 0.95, "seed": 0, "length_scale": length_scale,
            "attention": "sparse", "use_cache": True, "max_new_tokens": 16, "compare_ar": False,
            "relative_view": False, **over}


def reference_text(engine, prompt: str, k: dict) -> str:
    """The answer `prompt` gets alone, in this process, with the knobs the server was sent."""
    names = ("steps_ratio", "threshold", "schedule", "unmask", "temperature", "top_p", "seed",
             "length_scale", "attention", "use_cache", "max_new_tokens")
    config = run_config(Knobs(**{n: k[n] for n in names}), engine, CAP)
    return engine.generate_text(prompt, config).text


def raw_call(server, api: str, data: list, limit: float = 60.0) -> tuple[str, object]:
    """POST /gradio_api/call/<api> as any HTTP client may (NaN and Infinity allowed), then read
    the event stream to its end: (last event name, its data)."""
    body = json.dumps({"data": data}).encode()  # json.dumps writes NaN / Infinity literals
    req = urllib.request.Request(f"{server.url}gradio_api/call/{api}", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        event_id = json.load(resp)["event_id"]
    with urllib.request.urlopen(f"{server.url}gradio_api/call/{api}/{event_id}", timeout=limit) as resp:
        text = resp.read().decode("utf-8", "replace")
    events = re.findall(r"^event: (\w+)\ndata: (.*)$", text, re.M)
    assert events, f"no event in the reply: {text[:300]}"
    name, payload = events[-1]
    return name, json.loads(payload)


def fn_index(server, api_name: str) -> int:
    with urllib.request.urlopen(f"{server.url}config", timeout=10) as resp:
        config = json.load(resp)
    return next(d["id"] for d in config["dependencies"] if d.get("api_name") == api_name)


def generate_args(prompt: str, state: bool = False, **over) -> list:
    """/generate's inputs in order, for the raw HTTP routes; the queue route also takes the
    session state (last), the /call route does not."""
    k = knobs(10, **over)
    return [prompt, *(k[n] for n in ("steps_ratio", "threshold", "schedule", "unmask",
                                      "temperature", "top_p", "seed", "length_scale", "attention",
                                      "use_cache", "max_new_tokens", "compare_ar", "relative_view")),
            *([None] if state else [])]


def rss(pid: int | None = None) -> int:
    return psutil.Process(pid or os.getpid()).memory_info().rss


MB = 2**20


# --- fixtures -------------------------------------------------------------------------------------


def _start(model, tmp, **extra):
    port = H.free_port()
    env = H.app_env(model, port, tmp, **extra)
    if settings_from_env({}, cuda_available=False).server_name == "127.0.0.1":
        env.pop("GRADIO_SERVER_NAME")  # run on the default bind address, which must be the loopback
    return H.start_command([sys.executable, "app.py"], env, port, tmp)


@pytest.fixture(scope="module")
def server(tiny_ckpt, tmp_path_factory):
    """The shared server: a tiny checkpoint, a queue of 2 behind 1 running request."""
    srv = _start(tiny_ckpt, tmp_path_factory.mktemp("rel-app"), PDIFF_QUEUE_SIZE=str(QUEUE_SIZE),
                 PDIFF_CONCURRENCY=str(CONCURRENCY))
    yield srv
    srv.stop()


@pytest.fixture()
def app(engine, tiny_ckpt, tmp_path):
    """DemoApp in-process, named as load_models names an operator's checkpoint folder."""
    settings = settings_from_env({"PDIFF_MAX_NEW_TOKENS": str(CAP)}, cuda_available=False)
    models = Models(engine, None, "folder", str(tiny_ckpt.resolve()), None)
    return DemoApp(models, settings, TraceStore(tmp_path / "traces", keep=4), sleep=lambda s: None)


@contextlib.contextmanager
def saturated(client, n: int):
    """`n` long /generate jobs submitted at once; on exit every one is cancelled and done."""
    jobs = [client.submit(LONG, api_name="/generate", max_new_tokens=CAP) for _ in range(n)]
    try:
        yield jobs
    finally:
        for job in jobs:
            job.cancel()
        wait_for(lambda: all(j.done() for j in jobs), 30)


# --- 1. load: many users at once, a full queue ----------------------------------------------------


@pytest.fixture(scope="module")
def crowd(tiny_ckpt, engine, tmp_path_factory):
    """A server for 20 clients: the bundled model if it exists, else the tiny checkpoint; its
    queue holds all 20 (the default PDIFF_QUEUE_SIZE=16 plus 2 running would refuse two)."""
    bundled = (BUNDLED / "config.json").is_file()
    srv = _start("bundled" if bundled else tiny_ckpt, tmp_path_factory.mktemp("rel-crowd"),
                 PDIFF_QUEUE_SIZE=str(CLIENTS))
    ref = load_engine(None) if bundled else engine
    yield srv, ref, "bundled pd-notes" if bundled else "tiny random checkpoint"
    srv.stop()


def _markers(prompts: list[str]) -> list[set[str]]:
    """Per prompt, the made-up words only it holds: its entity name and its name-like values."""
    words = []
    for p in prompts:
        head = p.split("Facts:")[0]
        names = {w.strip(".,") for w in head.split()[1:] if w[:1].isupper()}
        values = {f.value for f in parse_facts(p) if f.value[:1].isupper() and " " not in f.value}
        words.append({w for w in names | values if len(w) >= 4})
    return [{w for w in mine if not any(w in q for j, q in enumerate(prompts) if j != i)}
            for i, mine in enumerate(words)]


def test_twenty_clients_each_get_their_own_answer(crowd):
    """20 clients (threads, one Client each) call /generate at once with different prompts and
    seeds; each gets a complete answer, exactly the one its own prompt gets alone, with its own
    prompt length, and (bundled model) none of another prompt's made-up names."""
    from gradio_client import Client

    srv, ref, which = crowd
    bundled = which.startswith("bundled")
    print(f"\nRELIABILITY 20 clients ran on the {which}")
    prompts = [ex.prompt for ex in make_split("heldout", CLIENTS)]
    sent = [knobs(ref.length_scale, seed=i, max_new_tokens=160 if bundled else 12)
            for i in range(CLIENTS)]
    barrier = threading.Barrier(CLIENTS, timeout=120)

    def one(i: int):
        c = Client(srv.url, verbose=False)
        try:
            barrier.wait()
            t0 = time.monotonic()
            out = c.predict(prompts[i], **sent[i], api_name="/generate")
            return out, time.monotonic() - t0
        finally:
            c.close()

    with cf.ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(one, range(CLIENTS), timeout=300))
    latencies = sorted(t for _, t in results)
    print(f"RELIABILITY 20 clients: latency min {latencies[0]:.1f} s, median "
          f"{statistics.median(latencies):.1f} s, max {latencies[-1]:.1f} s")
    answers = []
    for i, (out, _) in enumerate(results):
        answer, stats = out[2], out[5]
        assert "error" not in stats, f"client {i}: {stats}"
        assert stats["mode"] == "planned" and consistent(stats) and MASK not in answer
        assert answer == stats["text"]
        assert stats["prompt_tokens"] == len(ref.tok.encode_prompt(prompts[i])), f"client {i}"
        answers.append(answer)
    expected = [reference_text(ref, prompts[i], sent[i]) for i in range(CLIENTS)]
    mixed = [i for i in range(CLIENTS) if answers[i] != expected[i]]
    assert not mixed, f"clients {mixed} did not get their own prompt's answer ({which})"
    assert len(set(expected)) > CLIENTS // 2, "the answers are too alike to tell clients apart"
    if bundled:
        markers = _markers(prompts)
        for i, answer in enumerate(answers):
            foreign = {w for j, m in enumerate(markers) if j != i for w in m if w in answer}
            assert not foreign, f"client {i}'s answer holds other prompts' names {foreign}"


def test_requests_beyond_the_queue_get_a_busy_message(server, client):
    """With 1 running and a queue of 2, the 4th to 6th simultaneous requests are refused at once
    with gradio's queue-full message (HTTP 503 "Queue is full", QueueError for gradio_client)."""
    from gradio_client.utils import QueueError

    n = QUEUE_SIZE + CONCURRENCY + 3
    t0 = time.monotonic()
    with saturated(client, n) as jobs:
        refused = lambda: [j for j in jobs if j.done() and isinstance(j.exception(), QueueError)]
        assert wait_for(lambda: len(refused()) >= n - QUEUE_SIZE - CONCURRENCY, 20), (
            f"only {len(refused())} of {n} requests were refused")
        elapsed = time.monotonic() - t0
        assert {str(j.exception()) for j in refused()} == {QUEUE_FULL}
        # what any HTTP client sees: 503 and gradio's text, not a hang
        body = json.dumps({"data": generate_args("hi", True, max_new_tokens=1), "session_hash": "full",
                           "fn_index": fn_index(server, "generate")}).encode()
        req = urllib.request.Request(f"{server.url}gradio_api/queue/join", data=body,
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code == 503
        detail = json.loads(err.value.read())["detail"]
        assert detail.startswith(f"Queue is full. Max size is {QUEUE_SIZE}"), detail
    print(f"\nRELIABILITY queue full: {len(refused())} of {n} refused within {elapsed:.2f} s")
    assert elapsed < 20


def test_page_is_served_while_the_queue_is_full(server, client):
    """During a burst that fills the model slot and the queue, the page still loads quickly."""
    with saturated(client, QUEUE_SIZE + CONCURRENCY) as jobs:
        assert wait_for(lambda: any(len(j.outputs()) >= 2 for j in jobs), 30), "nothing ran"
        t0 = time.monotonic()
        with urllib.request.urlopen(server.url, timeout=5) as resp:
            status, page = resp.status, resp.read()
        elapsed = time.monotonic() - t0
    print(f"\nRELIABILITY page during a full queue: {elapsed * 1000:.0f} ms")
    assert status == 200 and b"Planned Diffusion" in page and elapsed < 5


def test_sessions_do_not_share_state(server, client):
    """One user's runs never show in another's results: B gets no speedup from A's AR run."""
    from gradio_client import Client

    prompt = "Write about the river Osk and its lanterns."
    client.predict(prompt, api_name="/baseline", max_new_tokens=4)
    mine = client.predict(prompt, api_name="/generate", max_new_tokens=4)[5]
    other = Client(server.url, verbose=False)
    try:
        theirs = other.predict(prompt, api_name="/generate", max_new_tokens=4)[5]
    finally:
        other.close()
    assert mine["speedup_vs_ar"] is not None, "A's own AR time is not used for A"
    assert theirs["speedup_vs_ar"] is None, "B's result used A's AR time"


# --- 2. cancellation --------------------------------------------------------------------------------


def _started(job, limit: float = 30.0) -> bool:
    return wait_for(lambda: len(job.outputs()) >= 2 or job.done(), limit)


def test_stop_ends_the_run_within_a_second(server, client):
    """Stop (job.cancel) closes the run on the server within a second, and the next request
    is answered."""
    settle(server)
    job = client.submit(LONG, api_name="/generate", max_new_tokens=CAP)
    assert _started(job) and not job.done(), "the run ended before it could be stopped"
    before = stopped_runs(server)
    t0 = time.monotonic()
    job.cancel()
    assert wait_for(lambda: stopped_runs(server) > before, 5), "the server never closed the run"
    elapsed = time.monotonic() - t0
    print(f"\nRELIABILITY stop -> run closed on the server in {elapsed * 1000:.0f} ms")
    assert elapsed < 1.0
    out = client.predict("hello again", api_name="/generate", max_new_tokens=8)
    assert consistent(out[5])


def test_stop_cancels_the_job_and_closes_the_run(server, client):
    """Stop (job.cancel) marks the client's job cancelled within a second, the server closes the
    run within 5 s, and the next request is answered."""
    from gradio_client.utils import Status

    settle(server)
    job = client.submit("Tell me about the city Lagil.", api_name="/generate", max_new_tokens=256)
    deadline = time.monotonic() + 30
    while len(job.outputs()) < 2 and not job.done() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not job.done(), "the run ended before it could be stopped"
    stopped = server.log().count("run stopped")
    job.cancel()
    t0 = time.monotonic()
    while not job.done() and time.monotonic() - t0 < 1.0:
        time.sleep(0.02)
    assert job.done() and job.status().code == Status.CANCELLED
    while server.log().count("run stopped") == stopped and time.monotonic() - t0 < 5.0:
        time.sleep(0.05)  # the server closed the run (and the engine's cache) too
    assert server.log().count("run stopped") > stopped
    out = client.predict("hello again", api_name="/generate", max_new_tokens=8)
    assert consistent(out[5])


def test_client_disconnect_ends_the_run_within_a_second(server, client):
    """A client that drops its event stream mid-run has its run closed within a second."""
    settle(server)
    session = uuid.uuid4().hex[:12]
    body = json.dumps({"data": generate_args(LONG, True, max_new_tokens=CAP), "session_hash": session,
                       "fn_index": fn_index(server, "generate"), "event_data": None,
                       "trigger_id": None}).encode()
    req = urllib.request.Request(f"{server.url}gradio_api/queue/join", data=body,
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).close()
    port = int(server.url.rstrip("/").rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", f"/gradio_api/queue/data?session_hash={session}")
    resp = conn.getresponse()
    frames, deadline = 0, time.monotonic() + 30
    while frames < 3 and time.monotonic() < deadline:  # the run is streaming
        frames += b"process_generating" in resp.fp.readline()
    assert frames >= 3
    before = stopped_runs(server)
    t0 = time.monotonic()
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    assert wait_for(lambda: stopped_runs(server) > before, 5), "the run outlived its client"
    elapsed = time.monotonic() - t0
    print(f"\nRELIABILITY disconnect -> run closed on the server in {elapsed * 1000:.0f} ms")
    assert elapsed < 1.0
    assert consistent(client.predict("hello", api_name="/generate", max_new_tokens=4)[5])


def _kv_caches() -> int:
    gc.collect()
    return sum(type(o) is KVCache for o in gc.get_objects())


def test_closing_a_run_releases_its_cache(app):
    """Closing a live run (what Stop and a disconnect do) leaves no KV cache alive."""
    assert _kv_caches() == 0
    frames = app.generate(LONG, Knobs.named(knobs(10, max_new_tokens=64)))
    for _ in range(3):
        next(frames)
    assert _kv_caches() == 1, "a running run holds exactly one cache"
    frames.close()
    assert _kv_caches() == 0


PLAN_ROWS = [[1, "a", 1, ""], [1, "b", 1, "end"]]


def _mixed_run(app, i: int, session) -> None:
    """Run number i of a fixed mix: stopped and finished planned runs, re-runs, baselines."""
    k = knobs(2, seed=i, max_new_tokens=24)  # room for PLAN_ROWS: no run is refused
    kind = i % 5
    if kind in (0, 1):  # Stop: closed after its first frames
        frames = (app.generate(LONG, Knobs.named(k), session=session) if kind == 0
                  else app.rerun_plan(LONG, PLAN_ROWS, Knobs.named(k), session=session))
        next(frames), next(frames, None)
        frames.close()
    elif kind == 2:
        list(app.rerun_plan(LONG, PLAN_ROWS, Knobs.named(k), session=session))
        app.after_run(session)  # the trace file, the editor rows and the attention picture
    elif kind == 3:
        list(app.generate(LONG, Knobs.named({**k, "max_new_tokens": 4}), session=session))
    else:
        list(app.baseline(LONG, Knobs(temperature=0.2, top_p=0.95, seed=i, max_new_tokens=4), False,
                          session))


def test_memory_is_flat_over_200_runs(app, caplog):
    """200 runs (stopped and finished, 5 kinds) after a warm-up: RSS grows < 30 MB and no KV
    cache is left alive; the stopped ones really were stopped mid-run (the app logs each)."""
    session = Session()
    for i in range(20):  # warm-up: every kind, several times
        _mixed_run(app, i, session)
    gc.collect()
    before, t0 = rss(), time.monotonic()
    with caplog.at_level(logging.INFO, logger="pdiff.app"):
        caplog.clear()
        for i in range(200):
            if i % 10 == 0:
                session = Session()  # a new visitor now and then, as on the server
            _mixed_run(app, i, session)
        stopped = sum("run stopped" in r.getMessage() for r in caplog.records)
        refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    gc.collect()
    after, seconds = rss(), time.monotonic() - t0
    print(f"\nRELIABILITY 200 in-process runs ({stopped} stopped mid-run, {200 - stopped} finished) "
          f"in {seconds:.1f} s: RSS {before / MB:.1f} MB after warm-up -> {after / MB:.1f} MB "
          f"({(after - before) / MB:+.1f} MB)")
    assert not refused, refused[:3]
    assert 40 <= stopped <= 80, f"{stopped} runs were cut short; 80 were meant to be stopped"
    assert after - before < 30 * MB
    assert _kv_caches() == 0


# --- 3. bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["", "   \n\t "])
def test_empty_prompt_is_a_message(client, prompt):
    """An empty prompt gets one line saying so."""
    out = client.predict(prompt, api_name="/generate", max_new_tokens=4)
    assert out[5] == {"error": "the prompt is empty; type an instruction"}
    assert "pd-notice" in out[4]


def test_huge_prompt_is_refused_at_once(client):
    """A 100,000-character prompt is refused with its size and the limit, quickly."""
    t0 = time.monotonic()
    out = client.predict("lantern " * 12_500, api_name="/generate", max_new_tokens=4)
    assert out[5] == {"error": f"the prompt is 100000 characters; at most {MAX_PROMPT_CHARS} are read"}
    assert time.monotonic() - t0 < 10


def test_prompt_over_the_context_is_refused(client, engine):
    """A prompt longer than the model's context gets a message with both numbers."""
    prompt = "Velora glass lanterns on the river Osk. " * 120  # 4,800 characters
    assert len(engine.tok.encode_prompt(prompt)) >= engine.context
    error = client.predict(prompt, api_name="/generate", max_new_tokens=4)[5]["error"]
    assert f"this model reads at most {engine.context - 1}" in error and "Shorten the prompt" in error
    assert_no_leak(error)


@pytest.mark.parametrize("knob, value, message", [
    ("steps_ratio", -1.0, "Value -1.0 is less than minimum value 0.01"),
    ("temperature", 99.0, "Value 99.0 is greater than maximum value 5"),
    ("max_new_tokens", 10**12, f"Value 1000000000000 is greater than maximum value {CAP}"),
    ("seed", -5, "Value -5 is less than minimum value 0"),
    ("attention", "psychic", "is not in the list of choices"),
    ("steps_ratio", "fast", "Step ratio must be a number; got 'fast'"),  # wrong type, by name
    ("temperature", [1, 2], "Temperature must be a number; got '[1, 2]'"),
    ("use_cache", {"x": 1}, None),  # anything gradio lets through, the app refuses by name
])
def test_bad_knobs_are_refused(client, knob, value, message):
    """An out-of-range or wrongly typed knob sent through the API is refused with a message
    (gradio's own for its components' limits), never run, never a traceback."""
    from gradio_client.exceptions import AppError

    try:
        out = client.predict("hi", api_name="/generate", **{"max_new_tokens": 4, knob: value})
    except AppError as err:
        text = str(err)
        assert message is None or message in text, text
    else:
        text = out[5].get("error")
        assert text and (message is None or message in text), out[5]
    assert_no_leak(text)


@pytest.mark.parametrize("position, value, message", [
    (1, float("nan"), "steps_ratio must be in [0.01, 4]; got nan"),
    (6, float("nan"), "top_p must be in [0.01, 1]; got nan"),
    (11, float("nan"), "max_new_tokens must be a whole number; got nan"),
    (5, float("inf"), "Value inf is greater than maximum value 5.0"),
    (8, float("-inf"), "Value -inf is less than minimum value 1"),
    (7, float("nan"), None),  # seed: gradio's Number cannot round NaN and refuses, silently
])
def test_nan_and_inf_knobs_are_refused(server, position, value, message):
    """NaN and infinities (which gradio_client cannot even send) are refused over raw HTTP."""
    args = generate_args("hi", max_new_tokens=4)
    args[position] = value
    event, data = raw_call(server, "generate", args)
    if event == "error":
        assert message is None or message in data["error"], data
    else:
        assert event == "complete" and data[5] == {"error": message}, data[5]
    assert_no_leak(data)


@pytest.mark.parametrize("rows, message", [
    ([[1, "a", "x", ""]], "row 1: length units must be a whole number; got 'x'"),
    ([[1, "a", 99, "end"]], "row 1: length units must be 1..20; got 99"),
    ([[0, "a", 1, ""]], "row 1: round must be 1 or more; got 0"),
    ([[1, "", 1, ""]], "row 1: the topic is empty"),
    ([[1, "a", 1, "end"], [2, "b", 1, "end"]], "round 1 ends the answer but round 2 follows"),
    ([[1, "a", 1, "maybe"]], "row 1: 'ends with' must be sync or end; got 'maybe'"),
    ([], "the plan table is empty"),
])
def test_malformed_plan_is_a_message(client, rows, message):
    """A malformed edited plan gets one line naming the row and what to change."""
    out = client.predict(LONG, {"headers": PLAN_HEADERS, "data": rows}, api_name="/rerun_plan",
                         max_new_tokens=16)
    assert message in out[5]["error"], out[5]


def test_plan_table_of_the_wrong_shape_is_refused(client):
    """A plan that is not a table is refused by gradio before the app runs: no traceback."""
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        client.predict(LONG, "not a table", api_name="/rerun_plan", max_new_tokens=16)
    assert_no_leak(err.value)


def test_plan_over_the_budget_is_cut_and_told(client):
    """Spans that promise more than max_new_tokens are cut (never mid-budget) and the notice
    says how many were kept; a plan that cannot even be written is refused with a message."""
    rows = [[1, "alpha", 20, ""], [1, "beta", 20, ""], [1, "gamma", 20, "end"]]
    out = client.predict(LONG, {"headers": PLAN_HEADERS, "data": rows}, api_name="/rerun_plan",
                         max_new_tokens=48, length_scale=10)
    stats = out[5]
    assert "kept 1 of 3 spans, the last one shortened" in out[4]
    assert stats["generated_tokens"] <= 48 and stats["spans"] == 1 and consistent(stats)
    long_topic = [[1, "topic " * 40, 1, "end"]]
    out = client.predict(LONG, {"headers": PLAN_HEADERS, "data": long_topic},
                         api_name="/rerun_plan", max_new_tokens=16)
    assert out[5] == {"error": "the plan needs more tokens than max_new_tokens=16 allows"}


def test_model_without_a_plan_still_answers(client):
    """The tiny random model writes no usable plan (it runs away): the run still finishes, says
    so, and answers in text (engine-level: test_no_plan_falls_back_to_text)."""
    out = client.predict(LONG, api_name="/generate", max_new_tokens=12)
    stats = out[5]
    assert stats["mode"] == "planned" and stats["spans"] == 0 and consistent(stats)
    assert "has no usable plan item" in out[4] and "ran to max_new_tokens" in out[4]
    assert out[2] == stats["text"]


@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_nan_logits_give_a_finished_run(tiny_ckpt, tmp_path, poison):
    """A model whose logits are all NaN or infinite (a broken checkpoint) still gives finished
    runs whose results are strict JSON (engine-level: test_broken_logits_do_not_crash)."""
    broken = load_engine(tiny_ckpt)
    with torch.no_grad():
        broken.model.lm_head.weight.fill_(poison)
        head = broken.model.lm_head
        assert not torch.isfinite(head(torch.randn(2, head.in_features))).any()  # no finite logit
    settings = settings_from_env({"PDIFF_MAX_NEW_TOKENS": str(CAP)}, cuda_available=False)
    demo = DemoApp(Models(broken, None, "folder", "broken", None), settings,
                   TraceStore(tmp_path), sleep=lambda s: None)
    for frames in (demo.generate(LONG, Knobs.named(knobs(2, max_new_tokens=8))),
                   demo.rerun_plan(LONG, PLAN_ROWS, Knobs.named(knobs(2, max_new_tokens=24)))):
        final = list(frames)[-1]
        stats = final.stats_json
        assert "error" not in stats and consistent(stats) and MASK not in final.answer
        json.dumps(stats, allow_nan=False)


@pytest.mark.parametrize("content, message", [
    (b"{nope", "the file is not valid JSON"),
    (b"\xff\xfe\x00 binary", "the file is not valid JSON"),
    (b"[1, 2, 3]", 'the file is not a pdiff trace (no "format": "pdiff-trace")'),
    (b'{"format": "pdiff-trace", "version": 99}', "trace version '99' is not readable"),
    (b'{"format": "pdiff-trace", "version": 1, "settings": [], "events": {}}',
     'a trace needs a "settings" object and an "events" list'),
    (b'{"format": "pdiff-trace", "version": 1, "settings": {}, "events": [{"type": "Bogus"}]}',
     "event 1 is not a pdiff event"),
    (b'{"format": "pdiff-trace", "version": 1, "settings": {}, "events": '
     b'[{"type": "DenoiseStep", "round": 0, "step": 0, "tokens": [], "token_ids": [], '
     b'"committed": [], "confidence": []}]}', "event 1 (DenoiseStep): a trace starts with one Started event"),
])
def test_bad_trace_files_are_messages(client, tmp_path, content, message):
    """A trace that is not JSON, or not a trace, or events out of order, gets one line."""
    from gradio_client import handle_file

    path = tmp_path / "trace.json"
    path.write_bytes(content)
    out = client.predict(handle_file(str(path)), api_name="/replay_trace")
    assert message in out[5]["error"], out[5]
    assert_no_leak(out[5])
    assert_no_leak(out[3])


# --- 4. user text is never a control tag --------------------------------------------------------------


def test_tags_in_the_prompt_stay_text(client, engine):
    """A prompt full of control tags reaches the model as plain characters (its token count is
    the plain encoding's, not the tag encoding's) and gets the same answer as in-process."""
    prompt = "Tell me about Velora " + " ".join(TAGS) + " and the river Osk."
    k = knobs(engine.length_scale, max_new_tokens=8)
    stats = client.predict(prompt, **k, api_name="/generate")[5]
    template = len(engine.tok.encode_prompt("x")) - len(engine.tok.encode_plain("x"))
    plain, as_tags = engine.tok.encode_plain(prompt), engine.tok.encode_markup(prompt)
    assert len(plain) != len(as_tags)  # else the count could not tell the two apart
    assert stats["prompt_tokens"] == template + len(plain) and consistent(stats)
    assert stats["text"] == reference_text(engine, prompt, k)


def test_tags_in_plan_topics_stay_text(client):
    """Edited topics holding tags keep the plan's structure (2 rounds, 3 spans) and are shown
    as the text typed."""
    topics = ["<async> intro </async>", "<sync/> then <|im_end|>", "<promise>-<topic> [PAD] <|mask|>"]
    rows = [[1, topics[0], 1, ""], [1, topics[1], 1, "sync"], [2, topics[2], 1, "end"]]
    out = client.predict(LONG, {"headers": PLAN_HEADERS, "data": rows}, api_name="/rerun_plan",
                         max_new_tokens=160, length_scale=2)
    stats = out[5]
    assert (stats.get("rounds"), stats.get("spans")) == (2, 3) and consistent(stats), stats
    assert all(html.escape(t) in out[0] for t in topics)
    assert out[1].count('class="pd-span"') == 3 and MASK not in out[2]


# --- 5. nothing reaches outside -------------------------------------------------------------------------


def test_no_endpoint_takes_a_model_or_a_path(client):
    """No API endpoint takes a model name or a path; the only file input is the trace upload."""
    api = client.view_api(print_info=False, return_format="dict")
    params = [(name, p["parameter_name"], p["component"])
              for name, ep in api["named_endpoints"].items() for p in ep["parameters"]]
    assert params and not api["unnamed_endpoints"]
    bad = [p for p in params if re.search(r"model|path|folder|checkpoint|dir", p[1])]
    assert not bad, bad
    assert [p for p in params if p[2] in ("File", "Files", "UploadButton")] == [
        ("/replay_trace", "trace_file", "File")]


def test_replay_refuses_a_path_on_the_server(server, client, tiny_ckpt):
    """/replay_trace reads only uploads: a path string, or a file reference to a server file,
    is refused, and nothing of that file comes back."""
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        client.predict("/etc/passwd", api_name="/replay_trace")
    assert_no_leak(err.value)
    inside = tiny_ckpt / "config.json"  # a .json file the server can read
    for path in (str(inside), "/etc/passwd"):
        event, data = raw_call(server, "replay_trace",
                               [{"path": path, "meta": {"_type": "gradio.FileData"}}, None])
        assert event == "error", data
        assert "model_type" not in json.dumps(data) and "root:" not in json.dumps(data)


@pytest.mark.parametrize("path", ["/etc/passwd", "app.py", "../../etc/passwd", "{ckpt}/config.json"])
def test_file_route_serves_nothing_outside(server, tiny_ckpt, path):
    """gradio's file route refuses files it did not create or receive (HTTP 403)."""
    path = path.format(ckpt=tiny_ckpt)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{server.url}gradio_api/file={path}", timeout=10)
    assert err.value.code == 403
    body = err.value.read().decode()
    assert "root:" not in body and "import" not in body and "model_type" not in body


def test_exported_trace_holds_only_its_run(app, tiny_ckpt):
    """A downloaded trace is format, version, settings and events of that run: no server path
    (not even the model folder's) and nothing of another session."""
    a, b = Session(), Session()
    list(app.rerun_plan("Alpha prompt about Velora.", PLAN_ROWS, Knobs.named(knobs(2, max_new_tokens=12)),
                        session=a))
    list(app.rerun_plan("Beta prompt about Tamsk.", PLAN_ROWS, Knobs.named(knobs(2, max_new_tokens=12)),
                        session=b))
    text = open(app.after_run(a).trace_file).read()
    trace = json.loads(text)
    assert set(trace) == {"format", "version", "settings", "events"}
    assert trace["settings"]["prompt"] == "Alpha prompt about Velora." and "Tamsk" not in text
    assert str(tiny_ckpt.parent) not in text
    assert_no_leak(text)


def test_default_bind_is_the_loopback(server):
    """Unconfigured, the app listens on 127.0.0.1 only."""
    assert settings_from_env({}, cuda_available=False).server_name == "127.0.0.1"
    proc = psutil.Process(server.proc.pid)
    conns = proc.net_connections(kind="inet") if hasattr(proc, "net_connections") else proc.connections()
    listening = {c.laddr for c in conns if c.status == psutil.CONN_LISTEN}
    port = int(server.url.rstrip("/").rsplit(":", 1)[1])
    assert ("127.0.0.1", port) in {(a.ip, a.port) for a in listening}
    assert {a.ip for a in listening} <= {"127.0.0.1", "::1"}, listening


def test_other_addresses_of_this_machine_are_refused(server):
    """Our port on this machine's non-loopback addresses takes no connection."""
    addrs = [a.address for nic in psutil.net_if_addrs().values() for a in nic
             if a.family == socket.AF_INET and not a.address.startswith("127.")]
    if not addrs:
        pytest.skip("this machine has no non-loopback IPv4 address")
    port = int(server.url.rstrip("/").rsplit(":", 1)[1])
    for addr in addrs:
        with pytest.raises(OSError):
            socket.create_connection((addr, port), timeout=2).close()


def test_unexpected_failure_names_no_server_path(app, engine):
    """A fault inside a run (here an OSError naming a file) is one line without the path."""
    class Faulty:
        length_scale = engine.length_scale

        def config(self, **k):
            return engine.config(**k)

        def generate(self, prompt, config):
            yield next(iter(engine.generate(prompt, config)))
            raise OSError(errno.ENOSPC, "No space left on device", "/work/main/runs/secret.bin")

    app.models.pd = Faulty()
    final = list(app.generate(LONG, Knobs.named(knobs(10, max_new_tokens=4))))[-1]
    assert "No space left on device" in final.warning
    assert_no_leak(final.warning)
    assert_no_leak(final.notices)


def test_trace_store_failure_names_no_server_path(app, tmp_path):
    """If the trace cannot be written, the notice says so without the folder's path."""
    session = Session()
    list(app.rerun_plan(LONG, PLAN_ROWS, Knobs.named(knobs(2, max_new_tokens=8)), session=session))
    folder = app.traces.folder
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    folder.write_text("not a folder")  # every write into it now fails
    out = app.after_run(session)
    assert out.trace_file is None and "could not be saved" in out.notices
    assert_no_leak(out.notices)


# --- 6. soak (slow) -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_soak_mixed_requests_stay_fast_and_flat(server, client, request):
    """Minutes of mixed requests (generate, rerun_plan, baseline, a stopped run) in a bounded
    loop: no errors; the last quarter's median latency per kind is within 1.5x of the first's,
    and the server's RSS grows < 30 MB from the end of the first quarter to the end."""
    if "slow" not in (request.config.option.markexpr or ""):
        pytest.skip("the soak runs with -m slow")
    seconds = float(os.environ.get("PDIFF_SOAK_SECONDS", "180"))
    settle(server)
    pid = server.proc.pid
    table = {"headers": PLAN_HEADERS, "data": H.PLAN_ROWS}
    kinds = {
        "generate": lambda i: client.predict(LONG, api_name="/generate", seed=i, max_new_tokens=16),
        "rerun_plan": lambda i: client.predict(LONG, table, api_name="/rerun_plan", seed=i,
                                               max_new_tokens=64, length_scale=4),
        "baseline": lambda i: client.predict(LONG, api_name="/baseline", seed=i, max_new_tokens=8),
    }
    records: list[tuple[str, float]] = []
    memory: list[int] = []
    errors: list[str] = []
    t_end = time.monotonic() + seconds
    cycles = 0
    while time.monotonic() < t_end and cycles < 2000:
        for kind, call in kinds.items():
            t0 = time.monotonic()
            out = call(cycles)
            stats = out[4] if kind == "baseline" else out[5]
            if "error" in stats or not consistent(stats):
                errors.append(f"{kind}: {stats}")
            records.append((kind, time.monotonic() - t0))
        t0 = time.monotonic()
        job = client.submit(LONG, api_name="/generate", seed=cycles, max_new_tokens=CAP)
        if not _started(job, 30):
            errors.append("a run did not start")
        job.cancel()
        if not wait_for(job.done, 10):
            errors.append("a stopped run did not end")
        records.append(("stop", time.monotonic() - t0))
        memory.append(rss(pid))
        cycles += 1
    assert not errors, errors[:5]
    assert cycles >= 8, "too few cycles to compare quarters"
    q = cycles // 4
    print(f"\nRELIABILITY soak: {seconds:.0f} s, {cycles} cycles, {len(records)} requests, 0 errors")
    ratios = {}
    for kind in (*kinds, "stop"):
        lat = [t for k, t in records if k == kind]
        first, last = statistics.median(lat[:q]), statistics.median(lat[-q:])
        ratios[kind] = last / first
        print(f"RELIABILITY soak {kind}: median {first * 1000:.0f} ms (first quarter) -> "
              f"{last * 1000:.0f} ms (last quarter), x{ratios[kind]:.2f}")
    growth = memory[-1] - memory[q - 1]
    print(f"RELIABILITY soak server RSS: {memory[0] / MB:.1f} MB after cycle 1, "
          f"{memory[q - 1] / MB:.1f} MB after the first quarter, {memory[-1] / MB:.1f} MB at the end "
          f"({growth / MB:+.1f} MB)")
    assert all(r <= 1.5 for r in ratios.values()), ratios
    assert growth < 30 * MB
