"""The packaged Whisper models: the base model's two parts joined once, checked, reused."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mina.errors import ConfigurationError
from mina.providers.whisper_models import BASE_SHA256, file_sha256, join_parts, model_path
from mina.settings import Settings


@pytest.fixture
def parts(tmp_path: Path) -> tuple[list[Path], list[Path], str]:
    src = tmp_path / "src"
    src.mkdir()
    one, two, cfg = src / "model.bin.part1", src / "model.bin.part2", src / "config.json"
    one.write_bytes(b"a" * 5000)
    two.write_bytes(b"b" * 3000)
    cfg.write_text("{}")
    return [one, two], [cfg], hashlib.sha256(b"a" * 5000 + b"b" * 3000).hexdigest()


def test_parts_are_joined_checked_and_reused(
    parts: tuple[list[Path], list[Path], str], tmp_path: Path
) -> None:
    pieces, files, sha = parts
    dest = join_parts(pieces, files, tmp_path / "model", sha)
    target = dest / "model.bin"
    assert target.read_bytes() == b"a" * 5000 + b"b" * 3000
    assert (dest / "config.json").read_text() == "{}"
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "model.bin"]  # no temp
    before = target.stat().st_ino, target.stat().st_mtime_ns
    assert join_parts(pieces, files, tmp_path / "model", sha) == dest
    assert (target.stat().st_ino, target.stat().st_mtime_ns) == before  # reused, not rewritten


def test_a_damaged_joined_file_is_joined_again(
    parts: tuple[list[Path], list[Path], str], tmp_path: Path
) -> None:
    pieces, files, sha = parts
    dest = join_parts(pieces, files, tmp_path / "model", sha)
    (dest / "model.bin").write_bytes(b"truncated")
    join_parts(pieces, files, dest, sha)
    assert file_sha256(dest / "model.bin") == sha


def test_parts_that_do_not_match_the_pinned_sha256_are_refused(
    parts: tuple[list[Path], list[Path], str], tmp_path: Path
) -> None:
    pieces, files, _ = parts
    with pytest.raises(ConfigurationError, match="reinstall the model packages"):
        join_parts(pieces, files, tmp_path / "model", "0" * 64)
    assert not (tmp_path / "model" / "model.bin").exists()
    assert [p.name for p in (tmp_path / "model").iterdir() if p.name.startswith(".")] == []


def test_a_missing_part_is_named(parts: tuple[list[Path], list[Path], str], tmp_path: Path) -> None:
    pieces, files, sha = parts
    os.unlink(pieces[1])
    with pytest.raises(ConfigurationError, match=r"model\.bin\.part2"):
        join_parts(pieces, files, tmp_path / "model", sha)


def test_the_packaged_base_model_joins_to_its_pinned_sha256_and_loads(tmp_path: Path) -> None:
    from faster_whisper import WhisperModel

    path = model_path(Settings(whisper_model="base", data_dir=tmp_path))
    assert Path(path).parent == tmp_path / "models"
    assert file_sha256(Path(path) / "model.bin") == BASE_SHA256
    model = WhisperModel(path, device="cpu", compute_type="int8", local_files_only=True)
    assert model.model.is_multilingual


def test_the_path_setting_overrides_the_packaged_model(tmp_path: Path) -> None:
    settings = Settings(whisper_model="base", whisper_model_path=str(tmp_path), data_dir=tmp_path)
    assert model_path(settings) == str(tmp_path)
    assert model_path(Settings(whisper_model="tiny.en", data_dir=tmp_path)).endswith("model")
