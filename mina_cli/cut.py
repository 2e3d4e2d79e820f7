"""Files in, for `mina process`: the checks before any work and the cut into chunks.

Light to import on purpose (no database, no pipeline): the command checks and starts cutting
its files first, so ffmpeg works while Python imports the rest and starts the runtime.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from mina import audio, probe
from mina.errors import MinaError, UnsupportedMedia

log = logging.getLogger(__name__)


def check_file(path: Path) -> None:
    """Refuse a missing, empty, non-audio, truncated or unreadable file before any work starts.
    Only the container is read here (every packet, not decoded: milliseconds);
    the packets are decoded by the cut (`Cut`), which every upload waits for."""
    if not path.exists():
        raise UnsupportedMedia(f"{path}: no such file")
    if path.is_dir():
        raise UnsupportedMedia(f"{path}: is a directory")
    if path.stat().st_size == 0:
        raise UnsupportedMedia(f"{path}: the file is empty")
    with path.open("rb") as fh:
        if probe.sniff(fh.read(64)) is None:
            raise UnsupportedMedia(f"{path}: not an audio file (wav, mp3, m4a, ogg, webm, flac)")
    try:
        probe.probe(path, decode=False)
    except UnsupportedMedia as exc:
        raise UnsupportedMedia(f"{path}: {exc.message}") from exc


class Cut:
    """One file cut into 16 kHz mono WAV pieces by one ffmpeg pass, started at once in a thread
    so it runs while the rest of the command starts up (imports, database, model).

    The pass decodes every packet and stops at the first that does not decode, so it is also
    the file's full check: nothing is uploaded before it ended well (`wait`), and a damaged
    file is refused with its reason before any conversation exists."""

    def __init__(self, path: Path, seconds: float, out_dir: Path) -> None:
        self.path = path
        self.pieces: list[Path] = []
        self.error: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(seconds, out_dir), name=f"cut-{path.name}", daemon=True
        )
        self._thread.start()

    def _run(self, seconds: float, out_dir: Path) -> None:
        started = time.monotonic()
        try:
            for piece in audio.segment(self.path, seconds, out_dir):
                self.pieces.append(piece)
            log.info(
                "%s: cut into %d pieces in %.2fs",
                self.path.name,
                len(self.pieces),
                time.monotonic() - started,
            )
        except MinaError as exc:
            self.error = f"{self.path}: {exc.message}"
        except Exception as exc:  # a thread boundary: recorded, shown, exit 2
            self.error = f"{self.path}: internal error while cutting: {type(exc).__name__}: {exc}"
            log.exception("%s: cutting failed", self.path.name)
        finally:
            self._done.set()

    def wait(self) -> list[Path]:
        """The pieces, once the whole file is cut; UnsupportedMedia if it could not be."""
        self._done.wait()
        if self.error is not None:
            raise UnsupportedMedia(self.error)
        if not self.pieces:
            raise UnsupportedMedia(f"{self.path}: the file contains no audio")
        return self.pieces
