"""Speaker clustering of window embeddings: how many speakers, and which windows are whose.

Windows are grouped into units (a few consecutive windows of one stretch of speech, ~3 s):
a unit's embedding, the mean of its windows', is steadier than a window's.

1. Over-clustering: average-linkage agglomerative clustering of the units on cosine distance
   (scipy), cut into at most MAX_START clusters; clusters with less than MIN_SHARE of the
   windows join the nearest one (a cough, an overlap, a noise is not a speaker).
2. Merging, most alike first: two clusters are one speaker when their windows are about as
   similar across the clusters as within each,

       rho = mean cos(A, B) / sqrt(mean cos(A, A') * mean cos(B, B'))   (pairs of distinct windows)

   is high. The ratio does not depend on how similar one voice's windows are to each other (a
   noisy phone line, a clean microphone), only on how much closer they are to each other than
   to the other cluster's. Pieces of one voice merge at rho ~0.8-0.98 (lower on a phone line),
   different people at 0.1-0.5, close synthetic voices at 0.6-0.72 (bench/speakers.py). So:
   rho >= SURE merges, rho < RHO never does, and in between a merge must be within RELATIVE
   of the least alike merge this meeting made so far (PRIOR before any): the level of one
   voice's pieces in this recording, so a phone line's lower level is allowed for and a
   voice clearly below it is someone else. With `num_speakers`, merging goes on (or stops) at
   that count; never above `max_speakers`.
3. After each merge, units go to their most similar centroid (k-means steps).
4. With `num_speakers` given (the count is known, only the partition is asked for), units
   are partitioned by spectral clustering instead (`spectral`): an affinity graph keeping
   each unit's p most similar units, p chosen per meeting by the normalized maximum
   eigengap (NME-SC, Park et al. 2019), the Laplacian's k smallest eigenvectors, k-means.
   The graph follows where units lie close together, so two close voices (espeak-ng's en-gb
   and en-us+m3: cosine 0.79 between their lines, 0.84-0.86 within one) are cut apart where
   the tree, whose first cut follows the largest spread (how much of a window is speech),
   is not: bench/speakers.py, the "hint" column. A neighbour graph needs enough units per
   cluster: with under SPECTRAL_MIN_UNITS units per speaker (the 2-3 minute 3- and 4-voice
   meetings of bench/notes.py: ~10) the tree partitions better (88 % against 78 % on the
   3-voice one) and is kept. Beyond SPECTRAL_POINTS units the graph is built on an even
   subsample and every unit goes to its nearest spectral centroid (eigenvectors cost n^3).

5. People who said who they are (`split_named`): when fewer voices are found than people
   introduced themselves, a voice cluster in which two or more different names were
   introduced holds that many people. Its units are split around them: the units where each
   name was said are pinned to that person, and the cluster's other units go to the nearest
   of the pinned units' centroids, once. No k-means steps after: the tree kept these voices
   together because what tells them apart is smaller than the spread inside the cluster
   (what is said, how much of a window is speech), and k-means follows that spread; the
   introductions are alike phrases ("Hi, I'm ..."), so the difference of their centroids is
   mostly the voices'. When the voices already gave as many speakers as people introduced
   themselves but one cluster holds two of them, the tree merged those two and split someone
   else: after the split the two most alike clusters merge again (`merge_closest`, never two
   named people, only at rho >= RHO), so the count stays and the partition follows the
   names. On bench/notes.py's stored meetings of seeds 7, 11 and 23 (15
   meetings, 3 through this split) attribution by words went 0.73 -> 0.88, 0.54 -> 0.81 and
   0.82 -> 0.84 on the split ones, the others unchanged.

6. With the count decided, the partition again (`within_whitened`, called from
   `mina.insights.diarize`): the embeddings are whitened against one voice's own scatter,
   estimated without labels from the differences between neighbouring windows of one stretch
   of speech (within-class covariance normalization: what changes inside a voice, the words
   and how much of a window is speech, weighs less; what stays, the voice, more), and the
   units are partitioned into that count again there (the tree and merges, or spectral
   clustering, as above). Its rho is not on the scale above, so it never decides a count.

Units are clustered centred (`centred`); `rho` is measured on the raw embeddings.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.cluster.vq import kmeans2

log = logging.getLogger(__name__)

RHO = 0.60  # clusters less alike than this (see above) are different speakers
SURE = 0.80  # ... at least this alike, one speaker
RELATIVE = 0.85  # in between: alike to within this factor of this meeting's least alike merge
PRIOR = 0.90  # the level of one voice's pieces before any merge was seen
MAX_START = 12  # clusters the tree is first cut into
MIN_SHARE = 0.03  # a speaker holds at least this share of the windows ...
MIN_WINDOWS = 3  # ... and at least this many
MAX_POINTS = 2500  # units the tree is built on (an even subsample beyond)
REFINE_ROUNDS = 3
SPECTRAL_MIN_UNITS = 12  # per speaker asked for (~45 s of speech each), for the spectral partition
SPECTRAL_POINTS = 300  # units the spectral graph is built on (an even subsample beyond)
SPECTRAL_P_VALUES = 12  # neighbour counts tried (2 .. a quarter of the units)
KMEANS_STARTS = 8
WITHIN_RIDGE = 1.0  # added to the within-voice scatter (scaled to mean eigenvalue 1)

F32 = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def unit_vectors(x: npt.NDArray[np.floating]) -> F32:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def centred(x: F32) -> F32:
    """Unit vectors less their mean, normalized again: what a meeting's voices share (the
    room, the line, the synthesizer) removed, what tells them apart kept."""
    return unit_vectors(x - x.mean(axis=0)) if x.shape[0] > 1 else x


def within_whitened(x: F32, stretch: IntArray) -> F32:
    """Centred unit vectors (`centred`) mapped so that what changes inside one voice weighs
    less and what stays weighs more: within-class covariance normalization, the scatter of one
    voice estimated without labels, from the differences between neighbouring windows of one
    stretch of speech (`stretch[i]`: window i's stretch; one stretch is one voice, other
    syllables, more or less of the window speech). W, scaled to a mean eigenvalue of 1 and
    ridged by WITHIN_RIDGE, maps x to x W^-1/2, unit length again. Unchanged (`centred`) when
    fewer than two such pairs exist."""
    c = centred(x)
    same = np.flatnonzero(stretch[1:] == stretch[:-1])
    if same.size < 2:
        return c
    diff = (c[same + 1] - c[same]).astype(np.float64)
    scatter = diff.T @ diff / same.size
    scatter *= scatter.shape[0] / max(float(np.trace(scatter)), 1e-12)
    values, vectors = np.linalg.eigh(scatter + WITHIN_RIDGE * np.eye(scatter.shape[0]))
    return unit_vectors(c @ (vectors / np.sqrt(values)) @ vectors.T)


def unit_vectors_of(x: F32, units: IntArray) -> F32:
    """One centred unit vector per unit: the mean of its windows' embeddings (as `cluster`
    clusters them)."""
    count = int(units.max()) + 1
    return centred(unit_vectors(np.stack([x[units == i].mean(axis=0) for i in range(count)])))


def centroids(x: F32, labels: IntArray, k: int) -> F32:
    return unit_vectors(np.stack([x[labels == c].mean(axis=0) for c in range(k)]))


def _renumber(labels: IntArray) -> IntArray:
    _, out = np.unique(labels, return_inverse=True)
    return np.asarray(out, dtype=np.int64).reshape(-1)


def rho(x: F32, labels: IntArray, k: int) -> npt.NDArray[np.float64]:
    """(k, k) alikeness of clusters of windows (see the module's docstring); 0 on the diagonal."""
    sums = np.stack([x[labels == c].sum(axis=0) for c in range(k)]).astype(np.float64)
    n = np.bincount(labels, minlength=k).astype(np.float64)
    cross = (sums @ sums.T) / np.outer(n, n)
    own = (np.einsum("ij,ij->i", sums, sums) - n) / np.maximum(n * (n - 1), 1.0)
    own = np.where(n > 1, own, 1.0)
    out = cross / np.sqrt(np.outer(np.maximum(own, 1e-3), np.maximum(own, 1e-3)))
    np.fill_diagonal(out, 0.0)
    return np.asarray(out)


def _start(u: F32, most: int) -> IntArray:
    n = u.shape[0]
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    idx = np.linspace(0, n - 1, min(n, MAX_POINTS)).astype(int)
    tree = linkage(u[idx].astype(np.float64), method="average", metric="cosine")
    sub = _renumber(np.asarray(fcluster(tree, t=min(most, idx.size), criterion="maxclust")))
    if idx.size == n:
        return sub
    cents = centroids(u[idx], sub, int(sub.max()) + 1)
    return np.asarray((u @ cents.T).argmax(axis=1), dtype=np.int64)


def _drop_small(u: F32, unit_labels: IntArray, weights: IntArray, keep: int) -> IntArray:
    k = int(unit_labels.max()) + 1
    mass = np.bincount(unit_labels, weights=weights, minlength=k)
    floor = max(MIN_WINDOWS, MIN_SHARE * weights.sum())
    order = [int(c) for c in np.argsort(-mass)]
    big = [c for c in order if mass[c] >= floor]
    big += [c for c in order if c not in big][: max(0, keep - len(big))]
    if not big:
        return np.zeros_like(unit_labels)
    cents = centroids(u, unit_labels, k)[big]
    out = unit_labels.copy()
    small = ~np.isin(unit_labels, big)
    out[small] = np.asarray(big)[(u[small] @ cents.T).argmax(axis=1)]
    return _renumber(out)


def _refine(u: F32, unit_labels: IntArray) -> IntArray:
    for _ in range(REFINE_ROUNDS):
        k = int(unit_labels.max()) + 1
        new = np.asarray((u @ centroids(u, unit_labels, k).T).argmax(axis=1), dtype=np.int64)
        if np.bincount(new, minlength=k).min() == 0 or np.array_equal(new, unit_labels):
            break
        unit_labels = new
    return unit_labels


def _kmeans(z: npt.NDArray[np.float64], k: int) -> IntArray | None:
    """The best of KMEANS_STARTS seeded k-means runs (deterministic) that keeps k clusters."""
    best: tuple[float, IntArray] | None = None
    for seed in range(KMEANS_STARTS):
        centres, labels = kmeans2(z, k, minit="++", seed=seed)
        if np.unique(labels).size < k:
            continue
        inertia = float(((z - centres[labels]) ** 2).sum())
        if best is None or inertia < best[0]:
            best = (inertia, np.asarray(labels, dtype=np.int64))
    return None if best is None else best[1]


def spectral(u: F32, k: int) -> IntArray | None:
    """A partition of unit vectors `u` into k clusters by spectral clustering on a pruned
    cosine affinity (see the module's docstring); None when no run keeps k clusters."""
    n = u.shape[0]
    sim = (u @ u.T).astype(np.float64)
    order = np.argsort(-sim, axis=1)
    rows = np.arange(n)
    best: tuple[float, npt.NDArray[np.float64]] | None = None
    for p in sorted({int(v) for v in np.linspace(2, max(3, n // 4), SPECTRAL_P_VALUES)}):
        graph = np.zeros((n, n))
        graph[np.repeat(rows, p), order[:, :p].ravel()] = 1.0
        graph = (graph + graph.T) / 2
        values, vectors = np.linalg.eigh(np.diag(graph.sum(axis=1)) - graph)
        gap = (values[k] - values[k - 1]) / max(float(values[-1]), 1e-10)
        ratio = p / n / max(gap, 1e-10)  # NME: a wide gap with few neighbours wins
        if best is None or ratio < best[0]:
            best = (ratio, vectors[:, :k])
    assert best is not None
    z = best[1] / np.maximum(np.linalg.norm(best[1], axis=1, keepdims=True), 1e-12)
    return _kmeans(z, k)


def _spectral_all(u: F32, k: int) -> IntArray | None:
    """`spectral` on at most SPECTRAL_POINTS units, every unit to its nearest centroid."""
    n = u.shape[0]
    if n <= SPECTRAL_POINTS:
        return spectral(u, k)
    idx = np.linspace(0, n - 1, SPECTRAL_POINTS).astype(int)
    sub = spectral(u[idx], k)
    if sub is None:
        return None
    labels = np.asarray((u @ centroids(u[idx], sub, k).T).argmax(axis=1), dtype=np.int64)
    return labels if np.unique(labels).size == k else None


def split_named(u: F32, unit_labels: IntArray, named: dict[int, int]) -> IntArray:
    """`unit_labels` with each cluster that holds units of two or more different people
    (`named`: unit -> person, where someone introduced themselves) split into one cluster
    per person, seeded and pinned there (see the module's docstring)."""
    out = unit_labels.copy()
    fresh = int(unit_labels.max()) + 1
    for c in range(int(unit_labels.max()) + 1):
        mine = np.flatnonzero(unit_labels == c)
        people = sorted({named[int(i)] for i in mine if int(i) in named})
        if len(people) < 2:
            continue
        sub = u[mine]
        pins = {j: people.index(named[int(i)]) for j, i in enumerate(mine) if int(i) in named}
        rows = np.array(list(pins), dtype=np.int64)
        fixed = np.array(list(pins.values()), dtype=np.int64)
        count = len(people)
        cents = unit_vectors(np.stack([sub[rows[fixed == p]].mean(axis=0) for p in range(count)]))
        lab = np.asarray((sub @ cents.T).argmax(axis=1), dtype=np.int64)
        lab[rows] = fixed  # every person keeps the units where they said their name
        ids = np.array([c, *range(fresh, fresh + len(people) - 1)], dtype=np.int64)
        fresh += len(people) - 1
        out[mine] = ids[lab]
    return out


def holds_two(unit_labels: IntArray, named: dict[int, int]) -> bool:
    """True when a cluster holds units where two different people said their names."""
    people: dict[int, set[int]] = {}
    for unit, person in named.items():
        people.setdefault(int(unit_labels[unit]), set()).add(person)
    return any(len(p) > 1 for p in people.values())


def merge_closest(
    x: F32, units: IntArray, unit_labels: IntArray, named: dict[int, int], most: int
) -> IntArray:
    """`unit_labels` with the two most alike clusters (`rho` of their windows `x`) merged,
    never two where different people said their names, when they are at least RHO alike or
    there are more than `most` clusters; unchanged otherwise."""
    k = int(unit_labels.max()) + 1
    people = [{p for u, p in named.items() if unit_labels[u] == c} for c in range(k)]
    alike = rho(x, unit_labels[units], k)
    best: tuple[float, int, int] | None = None
    for i in range(k):
        for j in range(i + 1, k):
            if people[i] and people[j] and people[i] != people[j]:
                continue
            if best is None or alike[i, j] > best[0]:
                best = (float(alike[i, j]), i, j)
    if best is None or (best[0] < RHO and k <= most):
        return unit_labels
    log.debug("merge clusters at rho %.3f after a split around names", best[0])
    return _renumber(np.where(unit_labels == best[2], best[1], unit_labels))


def _one_speaker(value: float, level: float, threshold: float | None) -> bool:
    if threshold is not None:  # one fixed threshold (calibration sweeps)
        return value >= threshold
    if value >= SURE:
        return True
    return value >= RHO and value >= RELATIVE * level


def cluster(
    x: F32,
    units: IntArray,
    num_speakers: int | None = None,
    max_speakers: int = 6,
    threshold: float | None = None,
) -> IntArray:
    """A speaker 0..k-1 for each window (rows of `x`, unit length); `units[i]` is the unit
    (0..u-1) window i belongs to. All windows of a unit get the same speaker."""
    n = x.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    count = int(units.max()) + 1
    weights = np.bincount(units, minlength=count)
    u = unit_vectors_of(x, units)
    if count == 1 or num_speakers == 1:
        return np.zeros(n, dtype=np.int64)
    want = None if num_speakers is None else min(num_speakers, count)
    most = max(1, max_speakers)
    if want is not None and count >= want * SPECTRAL_MIN_UNITS:
        split = _spectral_all(u, want)
        if split is not None:
            return split[units]
    labels = _start(u, max(MAX_START, want or 1))
    labels = _refine(u, _drop_small(u, labels, weights, keep=want or 1))
    level = PRIOR
    while True:
        k = int(labels.max()) + 1
        if k == 1 or (want is not None and k <= want):
            break
        alike = rho(x, labels[units], k)
        np.fill_diagonal(alike, -np.inf)  # a cluster never merges with itself (rho may be < 0)
        i, j = np.unravel_index(int(alike.argmax()), alike.shape)
        value = float(alike[i, j])
        if want is None and k <= most and not _one_speaker(value, level, threshold):
            break
        level = min(level, value)
        log.debug("merge clusters at rho %.3f (%d left)", value, k - 1)
        labels = _refine(u, _renumber(np.where(labels == max(i, j), min(i, j), labels)))
    return labels[units]
