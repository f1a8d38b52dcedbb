"""pdiff.app.gradio_compat patches gradio internals, so these tests fail loudly when a gradio
upgrade moves what a patch relies on: the version the patches were read against, and, for each
patch, the internal it wraps or reads as gradio's own source spells it. Their behaviour (exact
Stop, per-session memory, one-line refusals) is tested on the real server in test_reliability.py
and test_hostile.py."""

from __future__ import annotations

import inspect
import re

import gradio
import pytest
from gradio import blocks, routes, state_holder, utils
from gradio.components import number

from pdiff.app import gradio_compat


def _source(module) -> str:
    return inspect.getsource(module)  # the file on disk: what a patch replaced is still there


def test_gradio_is_the_version_the_patches_were_read_against():
    """After a gradio upgrade, re-read each patch against the new gradio (and its test in
    test_reliability.py / test_hostile.py), then move gradio_compat.WRITTEN_FOR."""
    assert gradio.__version__ == gradio_compat.WRITTEN_FOR, (
        f"gradio {gradio.__version__} is installed; pdiff.app.gradio_compat patches internals of "
        f"gradio {gradio_compat.WRITTEN_FOR}")


@pytest.mark.parametrize("module, patch, spelled", [
    # pin_session_block_ids wraps SessionState.__setitem__ and reads its blocks_config
    (state_holder, "pin_session_block_ids", r"def __setitem__\(self, key: int, value: Any\):\s+"
                                            r"from gradio\.components import State\s+"
                                            r"block = self\.blocks_config\.blocks\.get\(key\)"),
    # exact_cancels replaces routes.cancel_tasks and reads the /cancel route's local `body`
    (routes, "exact_cancels", r"async def cancel_event\(body: CancelBody\):\s+"
                              r"await cancel_tasks\(\{f\"\{body\.session_hash\}_\{body\.fn_index\}\"\}\)"),
    # ... and parses the task names gradio gives its event tasks
    (utils, "exact_cancels", r"task\.set_name\(f\"\{session_hash\}_\{fn_index\}<gradio-sep>\{event_id\}\"\)"),
    # strict_inputs wraps Blocks.validate_inputs, Blocks.call_function and Number's bounds check
    (blocks, "strict_inputs", r"def validate_inputs\(self, block_fn: BlockFunction, inputs: list\[Any\]\)"),
    (blocks, "strict_inputs", r"async def call_function\(\s+self,\s+block_fn: BlockFunction \| int,"),
    (number, "strict_inputs", r"def raise_if_out_of_bounds\(\s+num: float \| int, "
                              r"minimum: float \| int \| None, maximum: float \| int \| None\s+\) -> None:"),
], ids=lambda v: getattr(v, "__name__", None) if not isinstance(v, str) else None)
def test_each_patched_internal_is_still_spelled_as_the_patch_reads_it(module, patch, spelled):
    """The internal a patch wraps, or the caller whose local it reads, is in gradio's source as
    the patch expects it."""
    assert hasattr(gradio_compat, patch)
    assert re.search(spelled, _source(module)), (
        f"{module.__name__} changed: re-read pdiff.app.gradio_compat.{patch} against it")
