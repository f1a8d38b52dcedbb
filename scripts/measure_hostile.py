"""Issue 15's before/after figures against a running app (docs/reliability.md, "Measured").

    python scripts/measure_hostile.py PORT PID OUT.json BIG_TRACE.json REAL_TRACE.json

PORT and PID are a running `python app.py` (tiny checkpoint, PDIFF_MAX_NEW_TOKENS=256) on
127.0.0.1; REAL_TRACE is a trace the app exported after a real run of that checkpoint; BIG_TRACE
the trace played while another visitor generates. Prints and writes: RSS growth, time and reply
size per hostile trace (loaded, then its after-run step), how often a new run survives a Stop
pressed as it starts (20 trials), another visitor's generate latency idle and during a replay,
and the bytes one Play streams. Every loop is bounded.
"""
import copy
import json
import statistics
import sys
import threading
import time
import urllib.request
import uuid

import psutil

MB = 2**20
LONG = "Tell me about the city Lagil. Facts: country: Dregani; climate: hot."


def queue_call(url: str, fn_index: int, data: list, sh: str, timeout: float = 120) -> tuple[list, int]:
    """Join the queue as the page does; read the event's messages to its end: (messages, bytes)."""
    body = json.dumps({"data": data, "fn_index": fn_index, "session_hash": sh,
                       "event_data": None, "trigger_id": None}).encode()
    req = urllib.request.Request(url + "gradio_api/queue/join", data=body,
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()
    msgs, size = [], 0
    with urllib.request.urlopen(url + f"gradio_api/queue/data?session_hash={sh}", timeout=timeout) as resp:
        for line in resp:
            size += len(line)
            if line.startswith(b"data:"):
                msgs.append(json.loads(line[5:]))
                if msgs[-1].get("msg") in ("process_completed", "close_stream", "unexpected_error"):
                    break
    return msgs, size


def upload(url: str, text: str) -> dict:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"t.json\"\r\n"
            "Content-Type: application/json\r\n\r\n").encode()
    body += text.encode() + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(url + "gradio_api/upload", data=body,
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    path = json.load(urllib.request.urlopen(req, timeout=60))[0]
    return {"path": path, "orig_name": "t.json", "meta": {"_type": "gradio.FileData"}}


class App:
    def __init__(self, port: int, pid: int) -> None:
        self.url = f"http://127.0.0.1:{port}/"
        self.proc = psutil.Process(pid)
        with urllib.request.urlopen(self.url + "config", timeout=10) as resp:
            deps = json.load(resp)["dependencies"]
        by = {d.get("api_name"): d for d in deps}
        self.trace_fn, self.play_fn = by["replay_trace"]["id"], by["play"]["id"]
        self.after_fn = next(d["id"] for d in deps
                             if (d.get("api_name") or "").startswith("after_run") and d["id"] > self.trace_fn)
        self.after_inputs = len(deps[self.after_fn]["inputs"])

    def rss(self) -> int:
        return self.proc.memory_info().rss

    def load(self, text: str) -> tuple[str, float, int, dict]:
        """Upload a trace, load it, run its after-run step: (session, seconds, reply bytes, answer)."""
        sh = uuid.uuid4().hex[:10]
        file = upload(self.url, text)
        t0 = time.monotonic()
        m1, b1 = queue_call(self.url, self.trace_fn, [file, None], sh)
        _, b2 = queue_call(self.url, self.after_fn, [None] * self.after_inputs, sh)
        return sh, time.monotonic() - t0, b1 + b2, m1[-1].get("output") or {}


def hostile(app: App, real: dict) -> dict:
    def prompt_tokens(t):
        next(e for e in t["events"] if e["type"] == "Started")["prompt_tokens"] = 10**6

    def span_length(t):
        next(e for e in t["events"] if e["type"] == "SpansOpened")["items"][0]["length"] = 10**6

    out = {}
    for name, mutate in (("prompt_tokens 1e6", prompt_tokens), ("span length 1e6", span_length)):
        trace = copy.deepcopy(real)
        mutate(trace)
        before = app.rss()
        _, secs, size, answer = app.load(json.dumps(trace, separators=(",", ":")))
        time.sleep(0.5)
        out[name] = {"rss_mb": round((app.rss() - before) / MB, 1), "seconds": round(secs, 2),
                     "reply_mb": round(size / MB, 2), "answer": json.dumps(answer)[-160:]}
    return out


def races(client, trials: int = 20) -> int:
    """Stop pressed as a new run starts, in one client session: how often the new run completes."""
    completed = 0
    for i in range(trials):
        old = client.submit(LONG, api_name="/generate", max_new_tokens=256, seed=i)
        deadline = time.monotonic() + 30
        while len(old.outputs()) < 2 and not old.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        new = client.submit("hello again", api_name="/generate", max_new_tokens=8, seed=i)
        old.cancel()
        try:
            completed += "text" in new.result(timeout=20)[5]
        except Exception:  # noqa: BLE001, S110 - a lost run is what is counted
            pass
    return completed


def latency(client, n: int = 8) -> tuple[float, float]:
    times = []
    for i in range(n):
        t0 = time.monotonic()
        client.predict("hello there friend", api_name="/generate", max_new_tokens=64, seed=i)
        times.append(time.monotonic() - t0)
    return round(statistics.median(times), 3), round(max(times), 3)


def main() -> None:
    from gradio_client import Client

    app = App(int(sys.argv[1]), int(sys.argv[2]))
    real = json.loads(open(sys.argv[5]).read())
    out = {"hostile": hostile(app, real)}
    client = Client(app.url, verbose=False)
    out["race_new_run_completed_of_20"] = races(client)
    out["generate_idle_median_max_s"] = latency(client)
    sh, secs, size, answer = app.load(open(sys.argv[4]).read())
    out["big_trace_load"] = {"seconds": round(secs, 2), "reply_mb": round(size / MB, 2),
                             "answer": json.dumps(answer)[-120:]}
    stop, played = threading.Event(), {"bytes": 0, "plays": 0}

    def player():
        while not stop.is_set():
            _, size = queue_call(app.url, app.play_fn, [None], sh, timeout=300)
            played["bytes"] += size
            played["plays"] += 1

    thread = threading.Thread(target=player)
    thread.start()
    time.sleep(1)
    out["generate_during_replay_median_max_s"] = latency(client)
    stop.set()
    thread.join(timeout=300)
    out["replay_streamed_mb_per_play"] = round(played["bytes"] / MB / max(1, played["plays"]), 1)
    client.close()
    print(json.dumps(out, indent=1))
    with open(sys.argv[3], "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
