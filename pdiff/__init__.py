"""pdiff: Planned Diffusion, an AR plan then parallel spans by masked diffusion.

The core sits here: `model` (ids and visibility to logits), `layout` (the sequence and who sees
whom), `sampling` (samplers and commit schedules), `engine` (the loop) with `state` (one run's
state), `plan`, `tags`, `tokenizer`, `config`, `events` and `loader`; `cli` is the command line.
The layers above it are packages: `app` (the web app without gradio), `bench` (the benchmark),
`train` (training) and `notes` (the bundled task). Nothing in the core imports them;
`__main__` only hands each command to its module.
"""
