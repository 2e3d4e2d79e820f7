"""Transcribing one chunk (DESIGN §3.2), and the piece group for chunks too long for a call.

`run_chunk` claims, normalizes to 16 kHz mono, transcribes and records the outcome. Transient
errors give the chunk back and raise `TransientError` so the queue retries with backoff; on the
last attempt, and for permanent errors, the error is persisted, the chunk is `failed` and the
function returns normally, so group callbacks always fire.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError

from mina import audio, coverage, languages, metrics, normalizing, resilience
from mina.db import session_scope
from mina.errors import MinaError, NotFound, PermanentError, TransientError
from mina.insights import features, speaker_model
from mina.pipeline import barrier, heartbeat, provider_jobs, seams
from mina.pipeline import chunk_state as state
from mina.providers.base import JobProvider, TranscriptionResult
from mina.resilience import CircuitOpen
from mina.services import Services
from mina.storage import Storage
from mina.transcript import Segment

log = logging.getLogger(__name__)


def normalized_key(conversation_id: str, index: int) -> str:
    """Where the 16 kHz mono WAV of a chunk is kept for merge (derived; originals stay)."""
    return f"conversations/{conversation_id}/normalized/{index:06d}.wav"


def features_key(conversation_id: str, index: int) -> str:
    """Where a chunk's diarization features are kept until diarize has used them (derived)."""
    return f"conversations/{conversation_id}/features/{index:06d}.npz"


def _keep_features(svc: Services, claim: state.Claim, wav: Path) -> None:
    """The chunk's diarization features (mina.insights.features: speech and the speaker
    embeddings of its windows), computed here, where chunks are worked on in parallel, so the
    diarize task only has to cluster. Best effort: without them diarize computes them from the
    merged audio (and reports there if the speaker model is missing)."""
    samples = audio.read_normalized(wav)
    if samples is None:
        return
    out = wav.with_name("features.npz")
    try:
        model = speaker_model.load(svc.settings.speaker_model, svc.settings.data_dir)
        features.save(features.of_samples(samples, model), out)
        svc.storage.put_file(features_key(claim.conversation_id, claim.index), out)
    except (OSError, ValueError, MinaError) as exc:
        log.warning("chunk %s: diarization features not kept: %s", claim.chunk_id, exc)


def _normalized(storage: Storage, claim: state.Claim, workdir: Path) -> tuple[Path, float]:
    src = storage.local_path(claim.storage_key)
    if src is None:
        src = workdir / Path(claim.storage_key).name
        storage.download(claim.storage_key, src)
    wav = workdir / "normalized.wav"
    duration = normalizing.normalize(src, wav)  # with the chunks normalized meanwhile
    storage.put_file(normalized_key(claim.conversation_id, claim.index), wav)
    return wav, duration


def run_chunk(chunk_id: str, svc: Services, *, last_try: bool = False) -> str:
    """Transcribe one chunk: transcribed, failed, split, submitted (async job) or skipped."""
    # The claim and the language to transcribe in: one statement, committed before the call.
    try:
        with session_scope() as session:
            taken = state.claim_in(session, chunk_id, svc.settings, *languages.claim_columns())
    except OperationalError as exc:
        # The database is out of reach (restarting, a stale pooled connection): nothing was
        # taken. Transient, so the actor retries with backoff instead of dropping the message.
        raise TransientError(f"database out of reach: {str(exc).splitlines()[0][:200]}") from exc
    if taken is None:
        log.info("chunk %s: not claimable (held elsewhere or already terminal)", chunk_id)
        return "skipped"
    claim, (conversation_language, last_detection) = taken
    language = languages.chosen(conversation_language, last_detection)
    started = time.monotonic()
    beat = heartbeat.beating(
        lambda: state.renew_lease(claim, svc.settings), svc.settings, f"chunk {chunk_id}"
    )
    with beat:
        try:
            resilience.check(svc.transcriber.name, svc.settings)
            if isinstance(svc.transcriber, JobProvider):  # async: a webhook finishes it
                return provider_jobs.submit(claim, svc.settings, svc.storage, svc.transcriber)
            with tempfile.TemporaryDirectory(prefix="mina-chunk-") as tmp:
                wav, duration = _normalized(svc.storage, claim, Path(tmp))
                limit = piece_seconds(svc)
                if duration > limit:
                    _split(claim, wav, svc, limit)
                    return "split"
                result = svc.transcriber.transcribe(wav, language)
                _keep_features(svc, claim, wav)
        except CircuitOpen as exc:
            # Waiting for the provider is not an attempt: the chunk goes back to the queue with
            # its attempt refunded, and the actor retries it when the circuit may have closed.
            state.release(claim, str(exc), wait_seconds=exc.retry_after)
            metrics.CIRCUIT_WAITS.labels(exc.provider).inc()
            raise
        except TransientError as exc:
            return _transient(claim, svc, str(exc), last_try)
        except NotFound as exc:
            return _failed(claim, svc, f"audio blob missing: {exc}", state.PERMANENT)
        except MinaError as exc:  # permanent: corrupt audio, a provider's 400/401, bad settings
            return _failed(claim, svc, str(exc), state.PERMANENT)
    try:
        ended = state.complete(claim, result.segments, duration, result.warnings)
    except OperationalError as exc:
        # The connection dropped inside the completing transaction: it rolled back, nothing was
        # written. Transient: the chunk goes back to the queue and the actor retries it (if the
        # database is still away, the lease lapses and the scheduler queues it again).
        error = f"database connection lost: {str(exc).splitlines()[0][:200]}"
        return _transient(claim, svc, error, last_try)
    found = result.extra.get("language_probability")
    sure = float(found) if isinstance(found, int | float) else None
    languages.observe(claim.conversation_id, language, result.language, sure, claim.index)
    seconds = time.monotonic() - started
    metrics.CHUNK_SECONDS.labels(svc.transcriber.name).observe(seconds)
    log.info(
        "conversation %s: chunk %d transcribed in %.2fs",
        claim.conversation_id,
        claim.index,
        seconds,
    )
    _after_terminal(claim, svc, ended, transcribed=True)
    return "transcribed"


def handle_interrupt(chunk_id: str, svc: Services, error: str, *, last_try: bool) -> str:
    """A time limit or an unexpected error hit the actor: treat it as transient."""
    claim = state.current_claim(chunk_id)
    if claim is None:
        return "skipped"
    return _transient(claim, svc, error, last_try)


def _transient(claim: state.Claim, svc: Services, error: str, last_try: bool) -> str:
    if last_try or claim.attempt >= svc.settings.chunk_max_attempts:
        return _failed(claim, svc, f"{error} (gave up after {claim.attempt} attempts)", "transient")
    state.release(claim, error)
    metrics.CHUNK_RETRIES.inc()
    raise TransientError(error)


def _failed(claim: state.Claim, svc: Services, error: str, kind: str) -> str:
    ended = state.fail(claim, error, kind)
    if ended:
        metrics.CHUNK_FAILURES.labels(kind).inc()
    _after_terminal(claim, svc, ended)
    return "failed"


def _after_terminal(
    claim: state.Claim, svc: Services, ended: state.Ended | None, *, transcribed: bool = False
) -> None:
    if transcribed:  # the boundaries whose other side is already in (docs/transcription.md)
        seams.repair_around(claim.conversation_id, claim.index, svc)
    if ended is not None and not ended.barrier_due:
        # The conversation was not finished, or a chunk of it not terminal, when this chunk
        # turned terminal (read under its lock): the finish or the chunk that ends the
        # transcription later runs the barrier and sees this chunk terminal (chunk_state.Ended).
        return
    seams.repair_before_barrier(claim.conversation_id, svc)
    # The conversation may have been finished while this chunk was in flight, and the finish
    # group's callback may already have fired. The barrier reads the flag under lock. A claim
    # lost before the end (`ended` None) settles too: whoever ended the chunk may not have.
    barrier.settle(claim.conversation_id, svc.dispatcher, seams_made=True)


# --- pieces: a chunk longer than `piece_seconds` -------------------------------------------


def piece_prefix(claim: state.Claim | str) -> str:
    chunk_id = claim if isinstance(claim, str) else claim.chunk_id
    return f"pieces/{chunk_id}/"


def piece_seconds(svc: Services) -> float:
    """Split above this: `piece_seconds`, or less when the provider takes less per call
    (its `max_seconds`, e.g. OpenAI's upload limit in seconds of WAV)."""
    provider_max = getattr(svc.transcriber, "max_seconds", None)
    if provider_max is None:
        return svc.settings.piece_seconds
    return min(svc.settings.piece_seconds, float(provider_max))


def _split(claim: state.Claim, wav: Path, svc: Services, seconds: float) -> None:
    out = wav.parent / "pieces"
    out.mkdir()
    paths = audio.split(wav, seconds, out, ext="wav")
    for n, path in enumerate(paths):
        svc.storage.put_file(f"{piece_prefix(claim)}{n:04d}.wav", path)
    state.extend_lease(claim, svc.settings)
    svc.dispatcher.transcribe_pieces(claim.chunk_id, len(paths))
    log.info("chunk %s split into %d pieces", claim.chunk_id, len(paths))


def run_piece(chunk_id: str, piece: int, svc: Services, *, last_try: bool = False) -> None:
    """Transcribe one piece; its result (or its error) is stored next to it as JSON."""
    key = f"{piece_prefix(chunk_id)}{piece:04d}"
    with tempfile.TemporaryDirectory(prefix="mina-piece-") as tmp:
        wav = Path(tmp) / "piece.wav"
        svc.storage.download(f"{key}.wav", wav)
        try:
            result = svc.transcriber.transcribe(wav, languages.for_chunk_id(chunk_id))
            body: dict[str, Any] = {
                "segments": [s.model_dump() for s in result.segments],
                "warnings": result.warnings,
            }
        except PermanentError as exc:
            body = {"error": str(exc), "kind": state.PERMANENT}
        except CircuitOpen:
            raise  # wait for the provider (the actor retries it), never record it as a failure
        except TransientError as exc:
            if not last_try:
                raise
            body = {"error": str(exc), "kind": state.TRANSIENT}
        body["duration"] = audio.duration(wav)
        out = Path(tmp) / "result.json"
        out.write_text(json.dumps(body))
        svc.storage.put_file(f"{key}.json", out)


def assemble(chunk_id: str, svc: Services) -> str:
    """The piece group's completion callback: join the pieces' results into the chunk."""
    claim = state.current_claim(chunk_id)
    if claim is None:
        return "skipped"
    prefix = piece_prefix(chunk_id)
    results = sorted(b.key for b in svc.storage.list(prefix) if b.key.endswith(".json"))
    segments: list[Segment] = []
    warnings: list[dict[str, Any]] = []
    offset = 0.0
    for key in results:
        body = json.loads(svc.storage.get_bytes(key))
        if "error" in body:
            return _failed(claim, svc, f"piece {Path(key).stem}: {body['error']}", body["kind"])
        result = TranscriptionResult([Segment.model_validate(s) for s in body["segments"]])
        segments += [s.shifted(offset) for s in result.segments]
        warnings += [coverage.shifted_warning(w, offset) for w in body.get("warnings", [])]
        offset += float(body["duration"])
    ended = state.complete(claim, segments, offset, warnings)
    for blob in list(svc.storage.list(prefix)):
        svc.storage.delete(blob.key)
    _after_terminal(claim, svc, ended, transcribed=True)
    return "transcribed"
