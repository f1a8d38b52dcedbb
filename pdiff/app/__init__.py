"""The web app's logic, without gradio: app.py (at the root) lays out the page and wires it here.

- `settings`: the start-up: the environment, the models it names, the examples;
- `machine`: the running machine, measured once at start-up (device, threads, a wide forward's
  cost);
- `inputs`: what a page checks beyond the engine (prompt size, the server's budget), the plan
  editor's rows, the sweep's grid;
- `work`: the bound on the denoise work one request may ask for;
- `endpoints`: the endpoint table: each endpoint's name, inputs (around one knob group of
  `pdiff.config`), outputs and follow-up step; app.py wires from it;
- `handlers`: the API functions (`DemoApp`): the endpoints, the after-run step and replay;
- `runs`: the model runs behind them (a planned run with its AR baseline, AR alone, the sweep),
  each a generator of frames;
- `frames`: the output frame (`Frame`), its one builder and the one-line errors;
- `session`: one visitor's state and the live loop that folds a run as it streams;
- `fold`: a run's events folded into its state (`RunView`: rounds, plan items, span slots, the
  answer);
- `view`: the HTML of a folded run (plan chips, span cards, stats, notices, the legend);
- `inspector`: a committed token's tooltip (step, confidence, candidates) and the check of
  candidates;
- `chart`, `timeline`: plotly figures (the latency/quality chart and the attention picture; the
  critical-path timeline of forwards);
- `speed`: the run's one-line "why" and the "How it works" note, from measured costs;
- `facts`: the scope line, each answer's per-fact marks and the stats' quality row;
- `playback`: Play's speeds, which replay frames it shows and for how long;
- `trace`, `guard`: trace export, import and the download store; the bounds an uploaded trace is
  held to;
- `cache`: the cap on the disk that uploads, served files and traces take;
- `zerogpu`: ZeroGPU durations (read by the endpoint table's names) and wrapping.

None of them imports gradio: app.py and its gradio layer (`gradio_layer.py`, beside it: the
frame-to-output adapters and the gradio 6.31 patches) do.
"""
