"""The bundled task, "notes to text": the data generator (`data`) and the quality checker (`checker`).

Nothing in the engine depends on this package; the app and the benchmark use the checker to
score answers of the bundled models, and training uses the generator.
"""
