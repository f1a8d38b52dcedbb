"""The cache cap (pdiff.app.cache): oldest files go first until the folders fit, young files and
everything outside the folders stay, links are not followed."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from pdiff.app.cache import YOUNG_SECONDS, CacheCap, shared_folder, trim_folders
from pdiff.app.settings import SettingsError, settings_from_env

NOW = 1_000_000.0


def _file(path: Path, size: int, age: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (NOW - age, NOW - age))
    return path


def _total(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def test_oldest_files_go_first_until_the_total_fits(tmp_path):
    """Files are removed oldest first, and only as many as bring the total under the cap."""
    cache = tmp_path / "cache"
    files = [_file(cache / f"h{i}" / "t.json", 100, age=1000 - i) for i in range(6)]  # files[0] oldest
    removed = trim_folders([cache], 350, now=NOW)
    assert removed == [f.resolve() for f in files[:3]]
    assert _total(cache) == 300
    assert all(f.exists() for f in files[3:])


def test_an_emptied_file_folder_goes_with_its_file(tmp_path):
    """Gradio's one-file folders do not pile up empty; the capped folder itself stays."""
    cache = tmp_path / "cache"
    _file(cache / "h0" / "t.json", 100, age=100)
    trim_folders([cache], 0, now=NOW)
    assert cache.is_dir() and list(cache.iterdir()) == []


def test_young_files_stay_even_over_the_cap(tmp_path):
    """A file younger than `young` seconds (an upload being read) is never removed."""
    cache = tmp_path / "cache"
    old = _file(cache / "old.json", 100, age=60)
    young = _file(cache / "young.json", 100, age=1)
    removed = trim_folders([cache], 0, young=5, now=NOW)
    assert removed == [old.resolve()] and young.exists()


def test_one_cap_holds_several_folders_together(tmp_path):
    """The cap is on the folders' sum: the oldest file of either goes first."""
    a, b = tmp_path / "a", tmp_path / "b"
    oldest = _file(a / "1", 100, age=300)
    _file(b / "2", 100, age=200)
    _file(a / "3", 100, age=100)
    assert trim_folders([a, b], 250, now=NOW) == [oldest.resolve()]
    assert _total(a) + _total(b) == 200


def test_nothing_outside_the_folder_is_touched_and_links_are_not_followed(tmp_path):
    """A file beside the folder, and a file a link inside it points to, both stay; the link's
    target is not counted either."""
    cache, outside = tmp_path / "cache", tmp_path / "outside"
    beside = _file(tmp_path / "beside.json", 1000, age=9999)
    target = _file(outside / "big.bin", 10_000, age=9999)
    (cache / "sub").mkdir(parents=True)
    (cache / "link.bin").symlink_to(target)
    (cache / "dirlink").symlink_to(outside, target_is_directory=True)
    mine = _file(cache / "sub" / "mine.json", 100, age=9999)
    assert trim_folders([cache], 100, now=NOW) == []  # 100 bytes of its own: under the cap
    assert trim_folders([cache], 0, now=NOW) == [mine.resolve()]
    assert beside.exists() and target.exists()


def test_a_folder_inside_another_is_counted_once(tmp_path):
    """The trace folder inside Gradio's folder is not counted twice (one file, not two, over)."""
    cache = tmp_path / "cache"
    f = _file(cache / "traces" / "t.json", 100, age=100)
    assert trim_folders([cache, cache / "traces"], 100, now=NOW) == []
    assert f.exists()


def test_the_system_temp_folder_is_never_capped():
    """GRADIO_TEMP_DIR pointing at the temp folder (or above it) is refused, not trimmed."""
    temp = Path(tempfile.gettempdir())
    assert shared_folder(temp) and shared_folder(temp.parent)
    with pytest.raises(ValueError, match="others use"):
        CacheCap((temp,), 1)


def test_a_missing_folder_is_nothing_to_trim(tmp_path):
    """Gradio's folder does not exist before the first upload: start-up trims nothing."""
    assert trim_folders([tmp_path / "absent"], 0, now=NOW) == []


@pytest.mark.parametrize("raw", ["0", "-5", "abc", "1.5", "2000000"])
def test_a_bad_cache_size_stops_start_up_naming_the_variable(raw):
    """PDIFF_CACHE_MB is a whole number of megabytes in [1, 1000000], like the other PDIFF_ values."""
    with pytest.raises(SettingsError, match="PDIFF_CACHE_MB"):
        settings_from_env({"PDIFF_CACHE_MB": raw}, cuda_available=False)


def test_the_cache_size_defaults_to_500_mb():
    """Unset, the cap is 500 MB; set, it is the operator's value."""
    assert settings_from_env({}, cuda_available=False).cache_mb == 500
    assert settings_from_env({"PDIFF_CACHE_MB": " 64 "}, cuda_available=False).cache_mb == 64


# --- against the real server ---------------------------------------------------------------------

CAP_MB = 1  # PDIFF_CACHE_MB of the test server
UPLOAD = 300_000  # bytes per uploaded trace: six of them are well over the cap


@pytest.fixture(scope="module")
def capped_server(tiny_ckpt, tmp_path_factory):
    from tests import apphelpers as H

    tmp = tmp_path_factory.mktemp("capped")
    port = H.free_port()
    env = H.app_env(tiny_ckpt, port, tmp, PDIFF_CACHE_MB=str(CAP_MB), TMPDIR=str(tmp))
    srv = H.start_command([sys.executable, "app.py"], env, port, tmp)
    yield srv, tmp
    srv.stop()


def _app_files(tmp: Path) -> int:
    """Bytes in the server's Gradio folder and its trace folders."""
    folders = [tmp / "gradio", *tmp.glob("pdiff-traces-*")]
    return sum(_total(f) for f in folders if f.is_dir())


def test_uploads_beyond_the_cap_leave_the_cache_under_it(capped_server, tmp_path):
    """Traces uploaded to the real server past PDIFF_CACHE_MB pile up only while they are young
    (under 5 s); the next upload brings Gradio's folder and the trace folder together back under
    the cap, oldest first."""
    from gradio_client import Client, handle_file

    server, tmp = capped_server
    cap = CAP_MB * 2**20

    def send(i: int) -> None:
        path = tmp_path / f"trace-{i}.json"
        path.write_text(json.dumps({"note": uuid.uuid4().hex}) + " " * UPLOAD)  # each one new
        client.predict(handle_file(str(path)), api_name="/replay_trace")

    client = Client(server.url, verbose=False)
    try:
        for i in range(6):
            send(i)
        piled = _app_files(tmp)
        time.sleep(YOUNG_SECONDS + 1)  # every upload so far is now old enough to go
        send(6)
    finally:
        client.close()
    after = _app_files(tmp)
    print(f"\nCACHE cap {cap} B: {piled} B after six quick uploads, {after} B after the next")
    assert piled > cap  # the cap had something to do
    assert after <= cap
    assert "Traceback" not in server.log()
