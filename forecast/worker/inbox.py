"""A dataset's inbox: where feed files land, how the worker tells a complete file from one still being
written, and where files go after ingest (the archive) or when they are bad (quarantine, by ingest).

A file is taken when it is complete: renamed into place (writers should write ``name.part`` or a hidden
``.name`` and rename; a rename changes the file's inode time after its last write, which is how it is
recognised at once), or, for a writer that cannot rename, once its size and modification time have not
changed for the feed's ``settle`` time (clock time: a replay at N times real time settles N times faster). Temporary names (hidden files, ``*.part``, ``*.tmp``,
``*.partial``, ``*~``) are never taken. A file's arrival time is the clock's time when the worker first saw
it complete: that is its ``available_at`` in the store.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from forecast.errors import ForecastError
from forecast.clock import Clock

log = logging.getLogger(__name__)

__all__ = ["ArchiveError", "Arrival", "Inbox", "feed_folders"]

TEMP_SUFFIXES = (".part", ".tmp", ".partial", "~", ".incoming")


class ArchiveError(ForecastError):
    """A file could not be moved to the archive (e.g. the archive's disk is full); it stays in the inbox."""


@dataclass(frozen=True)
class Arrival:
    """A complete file in the inbox and when it arrived (clock time)."""

    path: Path
    size: int
    arrived_at: datetime


def feed_folders(settings, catalog) -> tuple[Path, str, Path]:
    """(inbox folder, file pattern, archive folder) of a dataset: its catalog's ``feed`` section, else
    ``HOME/inbox/<dataset>/`` and ``HOME/archive/<dataset>/``."""
    home = Path(settings.home)
    feed = catalog.feed
    pattern = feed.pattern
    if feed.inbox:
        inbox = Path(feed.inbox)
        if any(c in inbox.name for c in "*?["):  # a glob: folder + pattern
            inbox, pattern = inbox.parent, inbox.name
        inbox = inbox if inbox.is_absolute() else home / inbox
    else:
        inbox = home / "inbox" / catalog.id
    archive = Path(feed.archive) if feed.archive else home / "archive" / catalog.id
    archive = archive if archive.is_absolute() else home / archive
    return inbox, pattern, archive


class Inbox:
    """The files of one dataset's inbox folder."""

    def __init__(self, folder: Path, pattern: str, archive: Path, *, settle_s: float, clock: Clock):
        self.folder = Path(folder)
        self.pattern = pattern
        self.archive_dir = Path(archive)
        self.settle_s = float(settle_s)
        self.clock = clock
        # path -> (size, mtime_ns, wall time first seen with this size, clock time first seen)
        self._seen: dict[Path, tuple[int, int, float, datetime]] = {}

    def _candidates(self) -> list[os.DirEntry]:
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return []
        return [e for e in entries if e.is_file(follow_symlinks=False) and not e.name.startswith(".")
                and not e.name.endswith(TEMP_SUFFIXES) and fnmatch.fnmatch(e.name, self.pattern)]

    def scan(self) -> list[Arrival]:
        """The complete files now in the inbox, oldest arrival first (a file still being written is left
        for a later scan)."""
        wall = time.time()
        out: list[Arrival] = []
        present = set()
        for e in self._candidates():
            path = Path(e.path)
            present.add(path)
            try:
                st = e.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            prev = self._seen.get(path)
            if prev is None or (prev[0], prev[1]) != (st.st_size, st.st_mtime_ns):
                first_clock = prev[3] if prev is not None else self.clock.now()
                self._seen[path] = prev = (st.st_size, st.st_mtime_ns, wall, first_clock)
            # renamed (or moved) into place after its last write: the inode changed after the data did
            renamed = st.st_ctime_ns > st.st_mtime_ns
            # or unchanged for the settle time (the clock's: a replay runs it faster), by our own
            # observation or by its modification time
            stable_for = max(wall - prev[2], wall - st.st_mtime_ns / 1e9) * self.clock.speed
            if st.st_size > 0 and (renamed or stable_for >= self.settle_s):
                out.append(Arrival(path=path, size=st.st_size, arrived_at=prev[3]))
        for gone in set(self._seen) - present:
            del self._seen[gone]
        return sorted(out, key=lambda a: (a.arrived_at, a.path.name))

    def forget(self, path: Path) -> None:
        self._seen.pop(Path(path), None)

    def archive(self, path: Path, day: datetime) -> Path:
        """Move an ingested file to ``archive/YYYY/MM/DD/`` (a name already there gets a suffix). The copy
        is written under a temporary name and renamed into place, and only then is the inbox file
        removed: a failure (a full disk) leaves the file in the inbox and nothing half-written behind.

        Raises:
            ArchiveError: the move failed; the message says why.
        """
        path = Path(path)
        dest_dir = self.archive_dir / f"{day:%Y/%m/%d}"
        dest = dest_dir / path.name
        tmp = dest_dir / f".{path.name}.{uuid.uuid4().hex[:8]}.incoming"
        try:
            dest_dir.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                dest = dest_dir / f"{path.stem}.{uuid.uuid4().hex[:8]}{path.suffix}"
            try:
                os.link(path, tmp)  # same file system: no copy, no space needed
            except OSError:
                shutil.copyfile(path, tmp)
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
            os.replace(tmp, dest)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise ArchiveError(f"cannot archive {path.name} into {dest_dir}: {e.strerror or e}; it stays in the "
                               "inbox and is archived (as a duplicate) once the archive can take it") from None
        path.unlink(missing_ok=True)
        self.forget(path)
        return dest

    def discard(self, path: Path) -> None:
        """Remove a file that ingest quarantined (its copy and reason are in the quarantine folder)."""
        Path(path).unlink(missing_ok=True)
        self.forget(path)
