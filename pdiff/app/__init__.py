"""The web app's logic, without gradio: app.py (at the root) lays out the page and wires it here.

- `settings`: the environment, the models it names, the examples;
- `inputs`: what a page checks beyond the engine (prompt size, the server's budget), the plan
  editor's rows, the sweep's grid;
- `session`: one visitor's state and the live loop that folds a run as it streams;
- `trace`: export, import and the download store;
- `handlers`: the API functions (`DemoApp`) and the one builder of output frames;
- `view`, `chart`: pure display values (HTML lanes and stats; plotly figures);
- `zerogpu`, `gradio_compat`: ZeroGPU durations and wrapping; three small gradio 6.31 patches.

Only app.py imports gradio at module level.
"""
