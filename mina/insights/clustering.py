"""Speaker clustering: Ward over-clustering of windows, BIC merging, Gaussian resegmentation.

The number of speakers is the number of clusters left when no pair of clusters is better
described by one Gaussian than by two, by the Bayesian information criterion on frame MFCCs:

    dBIC = s/2 * (n log|S| - n1 log|S1| - n2 log|S2|) - LAMBDA/2 * P * log(s n)

(P = d + d(d+1)/2 parameters of a full-covariance Gaussian; s = min(1, CAP / n) caps the
frame count so the criterion does not drift with the length of the meeting). Pairs with
dBIC <= 0 are merged, cheapest first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.ndimage import uniform_filter1d

log = logging.getLogger(__name__)

LAMBDA = 3.0
CAP = 3000  # frames (30 s of speech) that one merge decision may weigh
MAX_WARD_POINTS = 2000  # Ward's memory is quadratic: cluster a subsample, assign the rest
REGULARIZE = 1e-3
SMOOTH_FRAMES = 100  # log-likelihoods are averaged over 1 s before a frame is labelled
CHUNK = 65536  # frames converted to float64 at a time: an hour of frames is never copied whole

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Frames = npt.NDArray[np.floating[Any]]


@dataclass
class _Stats:
    n: float
    s: FloatArray
    ss: FloatArray

    @classmethod
    def empty(cls, d: int) -> _Stats:
        return cls(0.0, np.zeros(d), np.zeros((d, d)))

    def __add__(self, other: _Stats) -> _Stats:
        return _Stats(self.n + other.n, self.s + other.s, self.ss + other.ss)

    def cov(self) -> FloatArray:
        mean = self.s / self.n
        d = mean.size
        return self.ss / self.n - np.outer(mean, mean) + REGULARIZE * np.eye(d)

    def logdet(self) -> float:
        return float(np.linalg.slogdet(self.cov())[1])


def over_cluster(x: FloatArray, k: int) -> IntArray:
    """Ward clustering of window vectors into `k` (more than the speakers) clusters."""
    n = x.shape[0]
    k = max(1, min(k, n))
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    idx = np.linspace(0, n - 1, min(n, MAX_WARD_POINTS)).astype(int)
    # scipy's Ward tree cut into at most k clusters (sklearn's AgglomerativeClustering gives the
    # same partition, but importing sklearn took ~0.7 s of every start-up); ties can leave
    # fewer than k, so labels are renumbered 0..found-1.
    tree = linkage(x[idx], method="ward")
    _, labels = np.unique(fcluster(tree, t=k, criterion="maxclust"), return_inverse=True)
    if idx.size == n:
        return np.asarray(labels, dtype=np.int64)
    found = int(labels.max()) + 1
    centres = np.stack([x[idx][labels == c].mean(axis=0) for c in range(found)])
    dist = ((x[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    return np.asarray(dist.argmin(axis=1), dtype=np.int64)


def _stats(frames: Frames, labels: IntArray) -> dict[int, _Stats]:
    """Sufficient statistics of the frames of every label >= 0, in one chunked pass."""
    d = frames.shape[1]
    out: dict[int, _Stats] = {}
    for start in range(0, frames.shape[0], CHUNK):
        x = np.asarray(frames[start : start + CHUNK], dtype=np.float64)
        lab = labels[start : start + CHUNK]
        for c in np.unique(lab[lab >= 0]):
            sel = x[lab == c]
            out[int(c)] = out.get(int(c), _Stats.empty(d)) + _Stats(
                float(sel.shape[0]), sel.sum(axis=0), sel.T @ sel
            )
    return out


def _delta_bic(a: _Stats, b: _Stats, d: int) -> float:
    both = a + b
    scale = min(1.0, CAP / both.n)
    params = d + d * (d + 1) / 2
    fit = both.n * both.logdet() - a.n * a.logdet() - b.n * b.logdet()
    return 0.5 * scale * fit - 0.5 * LAMBDA * params * float(np.log(scale * both.n))


def bic_merge(
    frames: Frames, labels: IntArray, num_speakers: int | None, max_speakers: int
) -> list[list[int]]:
    """Groups of fine cluster ids, one group per speaker (tiny clusters are left out)."""
    d = frames.shape[1]
    clusters = {c: st for c, st in _stats(frames, labels).items() if st.n > 5 * d}
    groups = {c: [c] for c in clusters}
    while len(clusters) > 1:
        keys = sorted(clusters)
        cost, i, j = min(
            (_delta_bic(clusters[a], clusters[b], d), a, b)
            for n, a in enumerate(keys)
            for b in keys[n + 1 :]
        )
        target = num_speakers if num_speakers is not None else max_speakers
        if len(clusters) <= target and (num_speakers is not None or cost > 0):
            log.debug("stop merging at %d clusters (next dBIC %.1f)", len(clusters), cost)
            break
        clusters[i] = clusters[i] + clusters.pop(j)
        groups[i] += groups.pop(j)
    return [groups[c] for c in sorted(groups)]


def _log_likelihoods(frames: Frames, labels: IntArray, k: int) -> FloatArray:
    """(frames, k) log-likelihood of every frame under each speaker's full Gaussian."""
    stats = _stats(frames, labels)
    out = np.empty((frames.shape[0], k))
    for c in range(k):
        mean = stats[c].s / stats[c].n
        inv = np.linalg.inv(stats[c].cov())
        logdet = stats[c].logdet()
        for start in range(0, frames.shape[0], CHUNK):
            diff = np.asarray(frames[start : start + CHUNK], dtype=np.float64) - mean
            # (diff @ inv) row-dot diff: the Mahalanobis terms through BLAS (a three-operand
            # einsum did the same in pure loops, 4x slower)
            out[start : start + CHUNK, c] = -0.5 * (((diff @ inv) * diff).sum(axis=1) + logdet)
    return out


def resegment(
    frames: Frames, speech: npt.NDArray[np.bool_], labels: IntArray, k: int, rounds: int = 2
) -> IntArray:
    """Label each speech frame by the speaker Gaussian that fits it best, smoothed over 1 s."""
    labels = labels.copy()
    weight = uniform_filter1d(speech.astype(np.float64), SMOOTH_FRAMES, mode="nearest")
    for _ in range(rounds):
        counts = np.bincount(labels[labels >= 0], minlength=k)
        if k < 2 or counts.min() <= frames.shape[1]:
            break
        scores = _log_likelihoods(frames, labels, k)
        scores[~speech] = 0.0
        scores = uniform_filter1d(scores, SMOOTH_FRAMES, axis=0, mode="nearest")
        scores /= np.maximum(weight, 1e-9)[:, None]
        labels = np.where(speech, scores.argmax(axis=1), -1).astype(np.int64)
    return labels
