"""`python -m pdiff bench`: the speed/quality benchmark and the GPU figures.

- `run`: the command, its grid of settings, the interleaved runs and the gathering of rows;
- `report`: quality signals, per-setting summaries and the files they are written to;
- `overhead`: host time outside model forwards (`--overhead`);
- `shapes`: one step of the 7B architecture with random weights (`--shape`), on graphs, by the
  peer and eager;
- `peer`: transformers' Qwen2 on pdiff's weights, decoding on its static-cache, compiled path.

The benchmark consumes the engine's event stream like every other consumer; nothing in the core
imports it.
"""
