"""The bundled task, "notes to text": the data generator (`data`, with task v6's composed prompts
in `wide` and its tables in `lexicon`), the quality checker (`checker`, with `plain` for facts
written as sentences and `sentences` for the format of the answer's text) and the copy and number
probes (`probes`).

Nothing in the engine depends on this package; the app and the benchmark use the checker to
score answers of the bundled models, and training uses the generator.
"""
