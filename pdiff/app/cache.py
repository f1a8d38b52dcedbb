"""A cap on the disk the app's files take: Gradio's cache of uploads and served files, and the
app's own trace folder (PDIFF_CACHE_MB).

`trim_folders` removes the oldest files until the folders' total is under a byte cap. It never
removes a file younger than `young` seconds (it may be an upload in progress or a file about to
be served), never follows a symbolic link, and never touches anything outside the folders it is
given. `CacheCap` holds the folders and the cap a server trims after each upload and export.
This module knows nothing of gradio: the app passes Gradio's folder in.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("pdiff.app")

YOUNG_SECONDS = 5.0  # a file this new may be in use (an upload being read, an export being served)


@dataclass(frozen=True)
class _File:
    path: Path
    size: int
    mtime: float


def _files(folder: Path) -> list[_File]:
    """Every plain file under `folder` (symbolic links neither followed nor listed)."""
    found = []
    for top, dirs, names in os.walk(folder, followlinks=False):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(top, d))]
        for name in names:
            path = Path(top, name)
            try:
                st = path.lstat()
            except OSError:
                continue  # removed meanwhile
            if path.is_symlink() or not path.is_file():
                continue
            found.append(_File(path, st.st_size, st.st_mtime))
    return found


def _remove(item: _File, root: Path) -> bool:
    try:
        item.path.unlink()
    except OSError:
        return False
    parent = item.path.parent
    if parent != root:  # Gradio keeps each file in a folder of its own; drop it once empty
        try:
            parent.rmdir()
        except OSError:
            pass  # not empty, or in use
    return True


def _outermost(roots) -> list[Path]:
    """The folders without repeats, a folder inside another given one dropped (counted once)."""
    roots = sorted(set(roots), key=lambda p: len(p.parts))
    kept: list[Path] = []
    for root in roots:
        if not any(root.is_relative_to(k) for k in kept):
            kept.append(root)
    return kept


def shared_folder(folder) -> bool:
    """True for a folder others' files live in too: the system temp folder, one above it, or
    the home folder. A cap must not trim it (GRADIO_TEMP_DIR=/tmp would hand it all of /tmp)."""
    folder = Path(folder).resolve()
    temp = Path(tempfile.gettempdir()).resolve()
    return temp.is_relative_to(folder) or folder == Path.home().resolve()


def trim_folders(folders, max_bytes: int, young: float = YOUNG_SECONDS,
                 now: float | None = None) -> list[Path]:
    """Remove the oldest files under `folders` until their total size is at most `max_bytes`;
    files younger than `young` seconds stay (and still count). Returns the files removed."""
    if max_bytes < 0:
        raise ValueError(f"a cache cap is a size in bytes, at least 0; got {max_bytes}")
    now = time.time() if now is None else now
    roots = _outermost(Path(f).resolve() for f in folders if Path(f).is_dir())
    files = [(f, root) for root in roots for f in _files(root)]
    total = sum(f.size for f, _ in files)
    removed = []
    for item, root in sorted(files, key=lambda pair: pair[0].mtime):
        if total <= max_bytes:
            break
        if now - item.mtime < young:
            break  # this and every later file are young
        if _remove(item, root):
            total -= item.size
            removed.append(item.path)
    return removed


@dataclass(frozen=True)
class CacheCap:
    """The folders a server's files pile up in, held together under `max_bytes`."""

    folders: tuple[Path, ...]
    max_bytes: int
    young: float = YOUNG_SECONDS

    def __post_init__(self) -> None:
        shared = [str(f) for f in self.folders if shared_folder(f)]
        if shared:
            raise ValueError(f"a cache cap would trim a folder others use too: {', '.join(shared)}")
        if isinstance(self.max_bytes, bool) or not isinstance(self.max_bytes, int) or self.max_bytes < 0:
            raise ValueError(f"a cache cap is a size in bytes, at least 0; got {self.max_bytes!r}")

    def trim(self) -> list[Path]:
        """Trim now; a failure is logged, never raised (a full cache must not fail a visit)."""
        try:
            removed = trim_folders(self.folders, self.max_bytes, self.young)
        except OSError as err:
            log.warning("cache trim failed: %s", err)
            return []
        if removed:
            log.info("cache over %d MB: removed the %d oldest files", self.max_bytes // 2**20, len(removed))
        return removed
