"""Speaker diarization from speaker embeddings (a trained model), and words to speakers.

1. Features (`mina.insights.features`): Silero VAD speech, 1.5 s windows every 0.75 s inside
   it, a CAM++ embedding per window. Transcription computes them chunk by chunk; `diarize`
   and `diarize_file` compute them here, block by block, for audio that has none.
2. Clustering (`mina.insights.clustering`): average-linkage agglomerative clustering on cosine
   similarity, cut at a calibrated threshold (the number of speakers), or, with the number
   given (`num_speakers`), partitioned into that many (spectral clustering). When fewer voices
   are found than people introduced themselves (`introductions`), a voice in which two names
   were introduced is split around them (`clustering.split_named`); still fewer, the windows
   are partitioned into as many as the people. With as many voices, a voice holding two
   introduced names is split too, and the two most alike other clusters merge. With the
   count decided, the windows are partitioned into that many again on embeddings whitened
   against one voice's own scatter (`clustering.within_whitened`), names kept apart as above.
3. Each window takes a speaker along time (Viterbi: similarity to the speakers' centroids on
   the centred embeddings, less a cost for a change of speaker); every 20 ms of speech takes
   the speaker of the nearest window; runs shorter than MIN_TURN join their longer
   neighbour, and turns of one speaker separated by less than JOIN_GAP_SECONDS are joined.
   Speakers are named S1, S2, ... in order of first appearance.
4. Each speaker's voice (`DiarizationResult.voices`): the mean of the L2-normalised embeddings
   of the windows Viterbi gave that speaker, normalised again (192 floats). Stored with the
   diarize task's result, never shown by the API; known speakers match it against voiceprints
   (`mina.memory.voiceprints`, docs/memory.md).
"""

from __future__ import annotations

import itertools
import logging
import subprocess
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt

from mina.errors import PermanentError
from mina.insights import clustering
from mina.insights import features as feat
from mina.insights.embeddings import Embedder, normalized
from mina.insights.names import Introduction
from mina.insights.schemas import DiarizationResult, SpeakerTurn
from mina.insights.speakers import assign_speakers

log = logging.getLogger(__name__)

STEP = 0.02  # seconds per label on the diarization grid
MIN_TURN = 0.4  # label runs shorter than this (seconds) join a neighbour
JOIN_GAP_SECONDS = 0.5  # pauses shorter than this inside one speaker's turn
BLOCK_SECONDS = 30
UNIT_WINDOWS = 4  # windows (3.75 s) clustered together inside a stretch of speech
SWITCH_INSIDE = 0.15  # cost of a change of speaker between windows of one stretch
SWITCH_BETWEEN = 0.02  # ... and across a pause
VOICE_DECIMALS = 5  # a stored voice's floats (cosine changes by < 1e-4)

IntArray = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]


def _stretches(f: feat.Features) -> IntArray:
    """The stretch of speech each window lies in (windows are in time order)."""
    mids = f.windows.mean(axis=1)
    return np.searchsorted(f.speech[:, 0], mids, side="right").astype(np.int64)


def _units(stretch: IntArray) -> IntArray:
    """Windows grouped UNIT_WINDOWS at a time inside each stretch: a unit id per window."""
    out = np.zeros(stretch.size, dtype=np.int64)
    unit, run = -1, 0
    for i, s in enumerate(stretch):
        if i == 0 or s != stretch[i - 1] or run == UNIT_WINDOWS:
            unit, run = unit + 1, 0
        out[i] = unit
        run += 1
    return out


def _viterbi(x: F32, labels: IntArray, k: int, stretch: IntArray) -> IntArray:
    """Each window's speaker, along time: similarity of its embedding (rows of `x`, unit
    length) to the speakers' centroids, less a cost for changing speaker between neighbouring
    windows (higher inside a stretch of speech)."""
    if k == 1:
        return np.zeros(x.shape[0], dtype=np.int64)
    score = (x @ clustering.centroids(x, labels, k).T).astype(np.float64)
    n = score.shape[0]
    back = np.zeros((n, k), dtype=np.int64)
    total = score[0].copy()
    switch = 1.0 - np.eye(k)
    for i in range(1, n):
        cost = SWITCH_INSIDE if stretch[i] == stretch[i - 1] else SWITCH_BETWEEN
        options = total[:, None] - cost * switch  # from (rows) -> to (columns)
        back[i] = options.argmax(axis=0)
        total = options.max(axis=0) + score[i]
    path = np.zeros(n, dtype=np.int64)
    path[-1] = int(total.argmax())
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def _grid_labels(f: feat.Features, window_labels: IntArray) -> IntArray:
    """A speaker per grid step inside speech (-1 outside): the nearest window centre's."""
    n = int(np.ceil(f.seconds / STEP)) + 1
    speech = np.zeros(n + 1, dtype=np.int64)
    np.add.at(speech, np.round(f.speech[:, 0] / STEP).astype(int).clip(0, n), 1)
    np.add.at(speech, np.round(f.speech[:, 1] / STEP).astype(int).clip(0, n), -1)
    inside = np.cumsum(speech)[:n] > 0
    centres = f.windows.mean(axis=1) / STEP
    steps = np.arange(n) + 0.5
    pos = np.clip(np.searchsorted(centres, steps), 1, max(1, centres.size - 1))
    left = np.clip(pos - 1, 0, centres.size - 1)
    right = np.clip(pos, 0, centres.size - 1)
    nearest = np.where(steps - centres[left] <= centres[right] - steps, left, right)
    return np.where(inside, window_labels[nearest], -1).astype(np.int64)


def _label_runs(labels: IntArray) -> list[tuple[int, int, int]]:
    change = np.flatnonzero(np.diff(labels)) + 1
    bounds = np.concatenate([[0], change, [labels.size]])
    return [(int(a), int(b), int(labels[a])) for a, b in itertools.pairwise(bounds)]


def _smooth(labels: IntArray) -> IntArray:
    """Speech runs shorter than MIN_TURN take the label of their longer speech neighbour."""
    labels = labels.copy()
    shortest = round(MIN_TURN / STEP)
    for _ in range(3):
        runs = _label_runs(labels)
        changed = False
        for i, (a, b, lab) in enumerate(runs):
            if lab < 0 or b - a >= shortest:
                continue
            near = [
                r
                for r in (runs[i - 1] if i else None, runs[i + 1] if i + 1 < len(runs) else None)
                if r is not None and r[2] >= 0
            ]
            if near:
                labels[a:b] = max(near, key=lambda r: r[1] - r[0])[2]
                changed = True
        if not changed:
            break
    return labels


def _turns(labels: IntArray) -> list[SpeakerTurn]:
    names: dict[int, str] = {}
    turns: list[SpeakerTurn] = []
    for a, b, lab in _label_runs(labels):
        if lab < 0:
            continue
        name = names.setdefault(lab, f"S{len(names) + 1}")
        start, end = round(a * STEP, 3), round(b * STEP, 3)
        if turns and turns[-1].speaker == name and start - turns[-1].end < JOIN_GAP_SECONDS:
            turns[-1] = SpeakerTurn(start=turns[-1].start, end=end, speaker=name)
        else:
            turns.append(SpeakerTurn(start=start, end=end, speaker=name))
    return turns


def _first_seen(grid: IntArray) -> dict[int, str]:
    """Cluster index -> speaker label, in order of first appearance (as `_turns` names them)."""
    names: dict[int, str] = {}
    for _, _, lab in _label_runs(grid):
        if lab >= 0 and lab not in names:
            names[lab] = f"S{len(names) + 1}"
    return names


def voices(
    embeddings_: npt.NDArray[np.float32], window_labels: IntArray, names: dict[int, str]
) -> dict[str, list[float]]:
    """Each labelled speaker's centroid: mean of its windows' unit embeddings, unit length."""
    unit = normalized(np.asarray(embeddings_, dtype=np.float32))
    out: dict[str, list[float]] = {}
    for lab, name in names.items():
        mine = unit[window_labels == lab]
        if len(mine):
            out[name] = [round(float(v), VOICE_DECIMALS) for v in normalized(mine.mean(axis=0))]
    return out


def _named_units(
    f: feat.Features, units: IntArray, introductions: Sequence[Introduction]
) -> dict[int, int]:
    """Unit -> person (index into the sorted names) for the units whose windows are centred
    inside someone's introduction; a unit claimed by two names is nobody's."""
    people = sorted({i.name for i in introductions})
    mids = f.windows.mean(axis=1)
    named: dict[int, int] = {}
    torn: set[int] = set()
    for intro in introductions:
        inside = np.flatnonzero((mids >= intro.start) & (mids <= intro.end))
        for unit in {int(v) for v in units[inside]}:
            person = people.index(intro.name)
            if named.get(unit, person) != person:
                torn.add(unit)
            named[unit] = person
    return {unit: person for unit, person in named.items() if unit not in torn}


def _repartition(
    x: F32,
    units: IntArray,
    labels: IntArray,
    k: int,
    named: dict[int, int],
) -> IntArray:
    """The windows partitioned again into the k speakers decided, on `x`: the embeddings
    whitened against one voice's own scatter (`clustering.within_whitened`). When that
    partition puts two people who said their names in one cluster, it is split around them and
    the two most alike other clusters merge (as `diarize_features` does on the raw
    embeddings); `labels` kept when no partition into k speakers comes out."""
    again = clustering.cluster(x, units, k, k)
    unit_labels = _per_unit(units, again)
    if clustering.holds_two(unit_labels, named):
        again = _split_names_merge_others(x, units, unit_labels, named, k)[units]
    return again if int(again.max()) + 1 == k else labels


def _per_unit(units: IntArray, labels: IntArray) -> IntArray:
    """Window labels as one label per unit (a unit's windows share theirs)."""
    unit_labels = np.zeros(int(units.max()) + 1, dtype=np.int64)
    unit_labels[units] = labels
    return unit_labels


def _split_names_merge_others(
    x: F32, units: IntArray, unit_labels: IntArray, named: dict[int, int], most: int
) -> IntArray:
    """A voice holding two people who said their names split around them, then the two most
    alike other clusters merged (`clustering.merge_closest`, at most `most`): the count stays,
    the partition follows the names. One label per unit."""
    split = clustering.split_named(clustering.unit_vectors_of(x, units), unit_labels, named)
    return clustering.merge_closest(x, units, split, named, most)


def diarize_features(
    f: feat.Features,
    num_speakers: int | None = None,
    max_speakers: int = 6,
    threshold: float | None = None,
    introductions: Sequence[Introduction] = (),
) -> DiarizationResult:
    """Diarization of precomputed features (see `features.of_samples`, `features.assemble`);
    `threshold` replaces `clustering.RHO` (calibration in bench/speakers.py).
    `introductions`: people saying who they are (`names.introductions` of the transcript).
    When the voices alone give fewer speakers than people introduced themselves and no
    `num_speakers` is given, a voice in which two of them introduced themselves is split
    around them; if that is still fewer, the windows are partitioned into as many speakers as
    people (at most `max_speakers`): two close voices the count cannot tell apart are still
    two people when each said who they are. When the voices give as many or more but one
    voice holds two people who said their names, it is split around them too and the two
    most alike other clusters merge (`clustering.merge_closest`): the count stays, the
    partition follows the names (`_split_names_merge_others`)."""
    if (num_speakers is not None and num_speakers < 1) or max_speakers < 1:
        raise ValueError("num_speakers and max_speakers must be at least 1")
    if len(f) == 0:
        return DiarizationResult(speakers=0, turns=[])
    stretch = _stretches(f)
    units = _units(stretch)
    labels = clustering.cluster(f.embeddings, units, num_speakers, max_speakers, threshold)
    k = int(labels.max()) + 1
    floor = min(len({i.name for i in introductions}), max_speakers)
    named = _named_units(f, units, introductions) if num_speakers is None else {}
    unit_labels = _per_unit(units, labels)
    if num_speakers is None and (k < floor or clustering.holds_two(unit_labels, named)):
        if k >= floor:  # as many voices as names, but two names in one voice
            split = _split_names_merge_others(f.embeddings, units, unit_labels, named, max_speakers)
            labels = split[units] if int(split.max()) < max_speakers else labels
        else:
            vectors = clustering.unit_vectors_of(f.embeddings, units)
            split = clustering.split_named(vectors, unit_labels, named)
            if k < int(split.max()) + 1 <= max_speakers:
                labels = split[units]
            else:
                labels = clustering.cluster(f.embeddings, units, floor, max_speakers)
        log.info("%d voices, %d people introduced: %d speakers", k, floor, int(labels.max()) + 1)
        k = int(labels.max()) + 1
    if k > 1:
        white = clustering.within_whitened(f.embeddings, stretch)
        labels = _repartition(white, units, labels, k, named)
    # along time on the raw (centred) embeddings: on the whitened ones a real 4-speaker
    # meeting of bench/speakers.py lost 1 % of its words (docs/notes.md)
    window_labels = _viterbi(clustering.centred(f.embeddings), labels, k, stretch)
    grid = _smooth(_grid_labels(f, window_labels))
    turns = _turns(grid)
    count = len({t.speaker for t in turns})
    log.info("diarized %.1fs of audio: %d speakers, %d turns", f.seconds, count, len(turns))
    found = voices(f.embeddings, window_labels, _first_seen(grid))
    return DiarizationResult(speakers=count, turns=turns, voices=found)


def _blocks(signal: npt.ArrayLike, sr: int) -> Iterator[npt.NDArray[np.float32]]:
    # Imported here: scipy.signal takes ~0.5 s to import and only foreign rates need it.
    from scipy.signal import resample_poly

    data = np.asarray(signal, dtype=np.float32).reshape(-1)
    step = BLOCK_SECONDS * sr
    for i in range(0, data.size, step):
        block = data[i : i + step]
        yield block if sr == feat.SR else resample_poly(block, feat.SR, sr).astype(np.float32)


def diarize(
    signal: npt.ArrayLike,
    model: Embedder,
    sr: int = 16000,
    num_speakers: int | None = None,
    max_speakers: int = 6,
) -> DiarizationResult:
    """Speaker turns of a mono float signal (any rate; resampled to 16 kHz block by block),
    its features computed block by block as transcription computes them chunk by chunk."""
    parts = [feat.of_samples(block, model) for block in _blocks(signal, sr)]
    return diarize_features(feat.assemble(parts), num_speakers, max_speakers)


def diarize_file(
    path: str,
    model: Embedder,
    num_speakers: int | None = None,
    max_speakers: int = 6,
    introductions: Sequence[Introduction] = (),
) -> DiarizationResult:
    """Diarize an audio file decoded by ffmpeg in blocks: an hour never sits in memory."""
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", path]
    cmd += ["-f", "f32le", "-ac", "1", "-ar", str(feat.SR), "-"]
    parts: list[feat.Features] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        while chunk := proc.stdout.read(4 * feat.SR * BLOCK_SECONDS):
            block = np.frombuffer(chunk[: len(chunk) // 4 * 4], dtype=np.float32)
            parts.append(feat.of_samples(block, model))
        error = proc.stderr.read().decode(errors="replace").strip()
    if proc.returncode != 0:
        raise PermanentError(f"cannot decode audio for diarization: {error[-300:]}")
    return diarize_features(
        feat.assemble(parts), num_speakers, max_speakers, introductions=introductions
    )


__all__ = ["assign_speakers", "diarize", "diarize_features", "diarize_file"]
