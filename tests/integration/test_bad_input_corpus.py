"""The bad-input corpus (issue 19): every kind of bad request the API meets, generated here.

Audio of every accepted container (ogg/opus, webm/opus, mp3, wav, m4a/aac, flac) is made with
ffmpeg (one wav with sox), then cut, emptied, overfilled, padded with junk or damaged inside its
packets; beside it: zero-byte and oversize bodies, indexes that are not integers or out of range,
titles too long or with control characters, JSON of the wrong shape, missing and lying content
types, path traversal in ids, keys and file names, NUL bytes, and webhook bodies.

Each refusal answers its documented status (docs/reliability.md, "Bad input") with a JSON error
`{"error": {"code", "message"}}` and leaves nothing: no conversation, no chunk row, no blob, no
webhook delivery. Damage inside the packets passes the request's container check
(`MINA_UPLOAD_DECODE_CHECK=worker`, the default): it is accepted (202) and fails in the worker
with its error kept and the original blob kept. After the corpus the server is still healthy
(/healthz, /readyz, and a good upload is still accepted).
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mina.db import session_scope
from mina.models import Chunk, Conversation, WebhookDelivery
from mina.webhooks import token
from tests.fixtures.stack import OPERATOR, bearer, wait_for

pytestmark = pytest.mark.embedded

MAX_BYTES = 300_000  # MINA_MAX_CHUNK_BYTES here: oversize bodies stay small
MAX_SECONDS = 4  # MINA_MAX_CHUNK_SECONDS here: the 6 s file is too long
SECRET = "whsec-corpus"
ENCODERS = {
    "ogg": ["-c:a", "libopus", "-b:a", "24k"],
    "webm": ["-c:a", "libopus", "-b:a", "24k"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "32k"],
    "wav": ["-c:a", "pcm_s16le", "-ar", "16000"],
    "m4a": ["-c:a", "aac", "-b:a", "32k"],
    "flac": ["-c:a", "flac", "-ar", "16000"],
}


def ffmpeg(path: Path, seconds: float, args: list[str]) -> bytes:
    source = f"sine=frequency=440:duration={seconds}"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", source, *args, str(path)], check=True
    )
    return path.read_bytes()


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    work = tmp_path_factory.mktemp("corpus")
    made = {ext: ffmpeg(work / f"a.{ext}", 2, args) for ext, args in ENCODERS.items()}
    made["long.ogg"] = ffmpeg(work / "long.ogg", MAX_SECONDS + 2, ENCODERS["ogg"])
    sox = work / "sox.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", str(sox), "synth", "2", "sine", "330"])
    made["sox.wav"] = sox.read_bytes()
    return made


# --- damage --------------------------------------------------------------------------------


def cut(data: bytes, share: float) -> bytes:
    return data[: int(len(data) * share)]


def zeros(data: bytes, at: int, n: int) -> bytes:
    return data[:at] + bytes(n) + data[at + n :]


def first_audio_page(data: bytes) -> int:
    """Where an Ogg Opus file's third page (its first of audio, after the two headers) starts."""
    pos = 0
    for _ in range(2):
        nseg = data[pos + 26]
        pos += 27 + nseg + sum(data[pos + 27 : pos + 27 + nseg])
    return pos


def packets(data: bytes, ext: str, work: Path) -> list[tuple[int, int]]:
    """(offset, size) of every audio packet, as FFmpeg's demuxer finds them."""
    import av

    path = work / f"packets.{ext}"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [(p.pos, p.size) for p in container.demux(stream) if p.size and p.pos is not None]


def noise_in_packets(data: bytes, ext: str, work: Path, keep: int) -> bytes:
    """Every packet's bytes after its first `keep` replaced by noise: the container is whole."""
    rng, out = random.Random(9), bytearray(data)
    for pos, size in packets(data, ext, work):
        out[pos + keep : pos + size] = rng.randbytes(max(0, size - keep))
    return bytes(out)


def mp3_in_wav_with_noise() -> bytes:
    """A WAV whose container is whole but whose MPEG audio is noise (tests/test_upload_api.py)."""
    import struct

    data = random.Random(7).randbytes(64_000)
    fmt = struct.pack("<HHIIHH", 0x55, 1, 16_000, 4_000, 1, 0)
    body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"data"
    body += struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


# --- the app and what a refusal must not leave ----------------------------------------------


@pytest.fixture
def corpus_client(env: Any, clean_db: str, tmp_path: Path) -> Any:
    return client_of(env, tmp_path)


def client_of(env: Any, tmp_path: Path) -> Any:
    from api import create_app
    from mina.settings import get_settings

    env(
        storage_url=tmp_path / "blobs",  # its own: every blob in it is this test's
        max_chunk_bytes=MAX_BYTES,
        max_chunk_seconds=MAX_SECONDS,
        webhook_secret=SECRET,
        transcriber="simulated",
        language_provider="simulated",
        sim_latency_seconds=0,
    )
    app = create_app(get_settings())
    app.testing = True
    return app.test_client()


def count(model: Any, *where: Any) -> int:
    with session_scope() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def blobs(client: Any, prefix: str = "") -> list[str]:
    storage = client.application.extensions["mina"].storage
    return sorted(b.key for b in storage.list(prefix))


@dataclass
class Target:
    cid: str
    auth: dict[str, str]
    audio: dict[str, bytes]
    work: Path


Send = Callable[[Any, Target], Any]


@dataclass(frozen=True)
class Case:
    kind: str  # the corpus kind it belongs to (at least 20 kinds)
    name: str
    status: int
    code: str
    send: Send
    leaves: str = "chunk"  # what a refusal must not have made: chunk, conversation, delivery


def upload(
    data: bytes | Callable[[Target], bytes],
    name: str = "c.ogg",
    index: Any = 0,
    part_type: str | None = None,
) -> Send:
    def send(client: Any, t: Target) -> Any:
        body = data(t) if callable(data) else data
        form: dict[str, Any] = {"file": (io.BytesIO(body), name, part_type)}
        if index is not None:
            form["index"] = str(index)
        return client.post(
            f"/api/conversations/{t.cid}/chunks",
            data=form,
            headers=t.auth,
            content_type="multipart/form-data",
        )

    return send


JSON = "application/json"
FINISH = "/api/conversations/{cid}/finish"
OTHER_KEY = "conversations/other/staging/000000/10-0123456789abcdef.ogg"


def raw(path: str, body: bytes | str, content_type: str | None, method: str = "POST") -> Send:
    """`path` may hold {cid}; the participant's token is sent."""

    def send(client: Any, t: Target) -> Any:
        headers = dict(t.auth)
        if content_type is not None:
            headers["Content-Type"] = content_type
        return client.open(path.format(cid=t.cid), method=method, data=body, headers=headers)

    return send


def create_with(body: str, content_type: str | None = "application/json") -> Send:
    def send(client: Any, t: Target) -> Any:
        headers = {} if content_type is None else {"Content-Type": content_type}
        return client.post("/api/conversations", data=body, headers=headers)

    return send


def webhook(body: str, chunk: str = "c-corpus") -> Send:
    def send(client: Any, t: Target) -> Any:
        return client.post(
            f"/webhooks/transcription/assemblyai?chunk={chunk}",
            data=body,
            headers={"X-Mina-Webhook-Token": token(SECRET, "assemblyai", chunk)},
            content_type="application/json",
        )

    return send


def the(ext: str, damage: Callable[[bytes], bytes] = lambda d: d) -> Callable[[Target], bytes]:
    return lambda t: damage(t.audio[ext])


def corpus() -> list[Case]:
    cases: list[Case] = []
    for ext in ENCODERS:
        name = f"c.{ext}"
        cases += [
            Case("truncated container", f"{ext} cut at 60 %", 415, "unsupported_media",
                 upload(the(ext, lambda d: cut(d, 0.6)), name)),
            Case("header only", f"{ext} first 64 bytes", 415, "unsupported_media",
                 upload(the(ext, lambda d: d[:64]), name)),
            Case("magic bytes then zeros", f"{ext} magic + zeros", 415, "unsupported_media",
                 upload(the(ext, lambda d: d[:16] + bytes(4000)), name)),
        ]  # fmt: skip
    cases += [
        Case("truncated container", "sox wav cut at 60 %", 415, "unsupported_media",
             upload(the("sox.wav", lambda d: cut(d, 0.6)), "c.wav")),
        Case("truncated container", "ogg with its middle third cut out", 415,
             "unsupported_media",
             upload(the("ogg", lambda d: d[: len(d) // 3] + d[2 * len(d) // 3 :]))),
        Case("damaged pages", "ogg with 10 zero bytes in its last data page (CRC mismatch)", 415,
             "unsupported_media",
             upload(the("ogg", lambda d: zeros(d, 2 * len(d) // 3, 10)))),
        Case("damaged pages", "ogg with zeros over its first audio page (FFmpeg resyncs past it)",
             415, "unsupported_media",
             upload(the("ogg", lambda d: zeros(d, first_audio_page(d) + 60, 40)))),
        Case("damaged pages", "ogg with junk after its last page", 415, "unsupported_media",
             upload(the("ogg", lambda d: d + random.Random(5).randbytes(3000)))),
        Case("lying header", "flac whose STREAMINFO is junk (declares hours)", 400, "too_long",
             upload(the("flac", lambda d: d[:16] + random.Random(3).randbytes(4000)), "c.flac")),
        Case("too long", f"{MAX_SECONDS + 2} s of ogg, limit {MAX_SECONDS} s", 400, "too_long",
             upload(the("long.ogg"))),
        Case("zero bytes", "an empty file", 415, "unsupported_media", upload(b"")),
        Case("oversize", "one byte over MINA_MAX_CHUNK_BYTES", 413, "too_large",
             upload(the("wav", lambda d: d[:44] + bytes(MAX_BYTES + 1 - 44)), "c.wav")),
        Case("oversize", "a body over the request limit (+2 MiB)", 413, "too_large",
             upload(bytes(MAX_BYTES + 2 * 1024 * 1024))),
        Case("not audio", "random bytes", 415, "unsupported_media",
             upload(random.Random(1).randbytes(5000))),
        Case("not audio", "a text file named .webm", 415, "unsupported_media",
             upload(b"hello, this is a text file\n" * 20, "notes.webm")),
        Case("lying content type", "text sent as audio/ogg", 415, "unsupported_media",
             upload(b"plain text, not audio\n" * 40, "c.ogg", part_type="audio/ogg")),
        Case("lying content type", "raw ogg body as audio/ogg (not multipart)", 400, "bad_index",
             raw("/api/conversations/{cid}/chunks", b"OggS" + bytes(100), "audio/ogg")),
        Case("lying content type", "JSON instead of multipart", 400, "bad_index",
             raw("/api/conversations/{cid}/chunks", '{"index": 0}', "application/json")),
        Case("missing content type", "an upload with no Content-Type", 400, "bad_index",
             raw("/api/conversations/{cid}/chunks", b"OggS" + bytes(100), None)),
        Case("missing content type", "multipart without its boundary", 400, "bad_index",
             raw("/api/conversations/{cid}/chunks", b"--x\r\n\r\n", "multipart/form-data")),
        Case("missing content type", "form-urlencoded: no file part", 400, "missing_file",
             raw("/api/conversations/{cid}/chunks", "index=0&file=abc",
                 "application/x-www-form-urlencoded")),
    ]  # fmt: skip
    for index in ("", "abc", "-1", "100001", str(10**30), "1e3", "1.5", "0x10", " 3", "+4",
                  "5_0", "\u0663", "9" * 5000):  # fmt: skip
        cases.append(
            Case(
                "bad index",
                f"index {index[:12]!r}",
                400,
                "bad_index",
                upload(the("ogg"), "c.ogg", index),
            )
        )
    cases += [
        Case("bad index", "no index field", 400, "bad_index", upload(the("ogg"), index=None)),
        Case("nul bytes", "index '0\\x00'", 400, "invalid_text", upload(the("ogg"), index="0\x00")),
        Case("missing file", "no file part", 400, "missing_file",
             raw("/api/conversations/{cid}/chunks", "index=0",
                 "application/x-www-form-urlencoded")),
        # titles and JSON shapes: no conversation may be created
        Case("title", "201 characters", 400, "invalid_body",
             create_with(json.dumps({"title": "a" * 201})), "conversation"),
        Case("title", "ANSI escape", 400, "invalid_body",
             create_with(json.dumps({"title": "a\x1b[31mred"})), "conversation"),
        Case("title", "a newline", 400, "invalid_body",
             create_with(json.dumps({"title": "one\ntwo"})), "conversation"),
        Case("title", "C1 control (U+0085)", 400, "invalid_body",
             create_with(json.dumps({"title": "a\u0085b"})), "conversation"),
        Case("nul bytes", "title with NUL", 400, "invalid_text",
             create_with(json.dumps({"title": "a\u0000b"})), "conversation"),
        Case("json shape", "an array", 400, "invalid_body", create_with("[]"), "conversation"),
        Case("json shape", "a form instead of JSON (title=x)", 415, "unsupported_content_type",
             create_with("title=x", "application/x-www-form-urlencoded"), "conversation"),
        Case("json shape", "finish as a form", 415, "unsupported_content_type",
             raw("/api/conversations/{cid}/finish", "expected_chunks=3",
                 "application/x-www-form-urlencoded")),
        Case("json shape", "an array of objects", 400, "invalid_body",
             create_with('[{"title": "x"}]'), "conversation"),
        Case("json shape", "a string", 400, "invalid_body", create_with('"x"'), "conversation"),
        Case("json shape", "a number", 400, "invalid_body", create_with("5"), "conversation"),
        Case("json shape", "null", 400, "malformed_json", create_with("null"), "conversation"),
        Case("json shape", "nested object as title", 400, "invalid_body",
             create_with('{"title": {"a": {"b": [1]}}}'), "conversation"),
        Case("json shape", "title a number", 400, "invalid_body",
             create_with('{"title": 5}'), "conversation"),
        Case("json shape", "unknown field", 400, "invalid_body",
             create_with('{"title": "x", "admin": true}'), "conversation"),
        Case("json shape", "not JSON", 400, "malformed_json", create_with("{"), "conversation"),
        Case("json shape", "JSON then garbage", 400, "malformed_json",
             create_with('{"title": "x"} tail'), "conversation"),
        Case("lying content type", "JSON sent as text/plain", 400, "malformed_json",
             create_with('{"title": "x"}', "text/plain"), "conversation"),
        Case("missing content type", "JSON without Content-Type", 400, "malformed_json",
             create_with('{"title": "x"}', None), "conversation"),
        Case("json shape", "language a path", 400, "invalid_language",
             create_with('{"language": "../../"}'), "conversation"),
        Case("finish body", "expected_chunks -1", 400, "invalid_body",
             raw("/api/conversations/{cid}/finish", '{"expected_chunks": -1}', "application/json")),
        Case("finish body", "expected_chunks 1.5", 400, "invalid_body",
             raw(FINISH, '{"expected_chunks": 1.5}', JSON)),
        Case("finish body", "expected_chunks [1]", 400, "invalid_body",
             raw(FINISH, '{"expected_chunks": [1]}', JSON)),
        Case("finish body", "expected_chunks 10**30", 400, "invalid_body",
             raw("/api/conversations/{cid}/finish", '{"expected_chunks": 1' + "0" * 30 + "}",
                 "application/json")),
        Case("finish body", "an array", 400, "invalid_body",
             raw("/api/conversations/{cid}/finish", "[]", "application/json")),
        # path traversal in ids and keys
        Case("path traversal", "id '..'", 404, "not_found",
             raw("/api/conversations/%2e%2e/chunks", b"", None)),
        Case("path traversal", "id '../../etc' (encoded slashes)", 404, "not_found",
             raw("/api/conversations/..%2F..%2Fetc/chunks", b"", None)),
        Case("path traversal", "id '..\\..\\win'", 404, "not_found",
             raw("/api/conversations/..%5C..%5Cwin/chunks", b"", None)),
        Case("path traversal", "id of 5000 characters", 404, "not_found",
             raw("/api/conversations/" + "a" * 5000 + "/finish", b"", None)),
        Case("path traversal", "operator detail of '../'", 404, "not_found",
             raw("/api/operator/conversations/..%2F", b"", None, "GET")),
        Case("path traversal", "confirm a key outside the conversation", 400, "bad_key",
             raw("/api/conversations/{cid}/chunks/confirm",
                 '{"index": 0, "key": "../../../etc/passwd"}', "application/json")),
        Case("path traversal", "confirm another conversation's key", 400, "bad_key",
             raw("/api/conversations/{cid}/chunks/confirm",
                 json.dumps({"index": 0, "key": OTHER_KEY}), JSON)),
        Case("nul bytes", "NUL in the conversation id", 400, "invalid_text",
             raw("/api/conversations/ab%00cd/chunks", b"", None)),
        Case("nul bytes", "NUL in a query parameter", 400, "invalid_text",
             raw("/api/conversations/{cid}/events?after=1%00", b"", None, "GET")),
        # provider webhooks with a right token and a wrong body
        Case("webhook body", "an array", 400, "invalid", webhook("[]"), "delivery"),
        Case("webhook body", "no status", 400, "invalid", webhook('{"transcript_id": "t"}'),
             "delivery"),
        Case("webhook body", "transcript_id of 101 characters", 400, "invalid",
             webhook(json.dumps({"transcript_id": "t" * 101, "status": "completed"})), "delivery"),
        Case("webhook body", "not JSON", 400, "invalid", webhook("{"), "delivery"),
        Case("nul bytes", "NUL in a webhook field", 400, "invalid_text",
             webhook('{"transcript_id": "a\\u0000", "status": "completed"}'), "delivery"),
    ]  # fmt: skip
    return cases


def check(client: Any, case: Case, t: Target) -> list[str]:
    """What is wrong with the case's answer and what it left; empty when all is right."""
    before = (count(Conversation), count(Chunk), count(WebhookDelivery), blobs(client))
    r = case.send(client, t)
    wrong = []
    body = r.get_json(silent=True)
    if r.status_code != case.status:
        wrong.append(f"status {r.status_code}, expected {case.status}: {r.get_data()[:200]!r}")
    if not (isinstance(body, dict) and set(body) == {"error"}):
        wrong.append(f"not a JSON error: {r.get_data()[:200]!r}")
    elif body["error"].get("code") != case.code or not body["error"].get("message"):
        wrong.append(f"error {body['error']}, expected code {case.code}")
    after = (count(Conversation), count(Chunk), count(WebhookDelivery), blobs(client))
    for what, was, now in zip(
        ("conversations", "chunk rows", "deliveries", "blobs"), before, after, strict=True
    ):
        if now != was:
            wrong.append(f"{what}: {was} before, {now} after")
    with session_scope() as s:
        conv = s.get(Conversation, t.cid)
        if conv is None or conv.is_finished:
            wrong.append("the conversation was finished or lost")
    return wrong


# Kinds whose requests are accepted, checked by the tests below the corpus.
ACCEPTED_KINDS = {"damage inside packets", "file names"}


def test_the_corpus_has_at_least_20_kinds() -> None:
    kinds = {c.kind for c in corpus()} | ACCEPTED_KINDS
    assert len(kinds) >= 20, sorted(kinds)
    assert {c.name.split()[0] for c in corpus() if c.kind == "truncated container"} >= set(ENCODERS)


def test_every_refusal_answers_its_status_and_leaves_nothing(
    corpus_client: Any, audio: dict[str, bytes], tmp_path: Path
) -> None:
    client = corpus_client
    created = client.post("/api/conversations", json={"title": "corpus"}).get_json()
    t = Target(created["id"], bearer(created["token"]), audio, tmp_path)
    failures = [f"{c.kind}: {c.name}: {wrong}" for c in corpus() if (wrong := check(client, c, t))]
    assert not failures, "\n".join(failures)
    assert count(Chunk) == 0 and blobs(client) == []

    # Still healthy, and still accepting good audio in every format.
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["status"] == "ok", ready.get_json()
    for index, ext in enumerate(ENCODERS):
        r = upload(the(ext), f"c.{ext}", index)(client, t)
        assert r.status_code == 202, (ext, r.get_json())
    assert count(Chunk) == len(ENCODERS)


def test_file_names_are_never_paths(corpus_client: Any, audio: dict[str, bytes]) -> None:
    """The multipart file name is ignored: a traversal or a NUL in it is accepted (202) and the
    blob lands under the conversation's own key, sniffed by its bytes."""
    client = corpus_client
    created = client.post("/api/conversations", json={}).get_json()
    cid, auth = created["id"], bearer(created["token"])
    t = Target(cid, auth, audio, Path("."))
    names = ["../../../../tmp/evil.ogg", "/etc/passwd", "..\\..\\x.ogg", "a\x00b.ogg", "c.ogg"]
    for index, name in enumerate(names):
        data = audio["mp3"] if name == "c.ogg" else audio["ogg"]
        r = upload(data, name, index)(client, t)
        assert r.status_code == 202, (name, r.get_json())
    keys = blobs(client)
    assert len(keys) == len(names)
    assert all(k.startswith(f"conversations/{cid}/chunks/") and ".." not in k for k in keys)
    with session_scope() as s:
        lying = s.scalar(select(Chunk).where(Chunk.conversation_id == cid, Chunk.index == 4))
        assert lying is not None and lying.mime == "audio/mpeg"  # named .ogg, sniffed as mp3


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("mp3: frame headers kept, their payload noise", "mp3"),
        ("m4a: every AAC packet noise", "m4a"),
        ("wav holding MPEG audio that is noise", "mp3-in-wav"),
    ],
)
def test_damage_inside_packets_is_accepted_and_fails_in_the_worker(
    corpus_client: Any, audio: dict[str, bytes], workers: Any, tmp_path: Path, name: str, make: str
) -> None:
    client = corpus_client
    if make == "mp3":
        data, filename = noise_in_packets(audio["mp3"], "mp3", tmp_path, keep=4), "c.mp3"
    elif make == "m4a":
        data, filename = noise_in_packets(audio["m4a"], "m4a", tmp_path, keep=0), "c.m4a"
    else:
        data, filename = mp3_in_wav_with_noise(), "c.wav"
    workers(threads=2)
    created = client.post("/api/conversations", json={}).get_json()
    cid, auth = created["id"], bearer(created["token"])
    r = upload(data, filename)(client, Target(cid, auth, audio, tmp_path))
    assert r.status_code == 202, (name, r.get_json())  # the container is whole
    chunk_id = r.get_json()["id"]

    def failed() -> Chunk | None:
        with session_scope() as s:
            row = s.get(Chunk, chunk_id)
            return row if row is not None and row.status == "failed" else None

    row = wait_for(failed, timeout=90)
    assert row.error and row.error_kind == "permanent", (row.error, row.error_kind)
    view = client.get(f"/api/conversations/{cid}", headers=auth).get_json()
    assert [c["index"] for c in view["failed_chunks"]] == [0] and view["failed_chunks"][0]["error"]
    storage = client.application.extensions["mina"].storage
    with storage.open(row.storage_key) as kept:  # the original, byte for byte
        assert hashlib.sha256(kept.read()).hexdigest() == hashlib.sha256(data).hexdigest()
    operator = client.get(f"/api/operator/conversations/{cid}", headers=OPERATOR).get_json()
    assert operator["chunks"][0]["error"] == row.error
    assert client.get("/healthz").status_code == 200


def test_a_database_out_of_reach_is_503_not_500(env: Any, clean_db: str, tmp_path: Path) -> None:
    """Down, restarting or out of connections ("too many clients", met by bench/load.py on a
    shared machine): a JSON 503 with Retry-After, which clients retry, and no 500."""
    from api import create_app
    from mina import db
    from mina.settings import get_settings
    from tests.conftest import EMBEDDED

    good = client_of(env, tmp_path)
    created = good.post("/api/conversations", json={}).get_json()
    away = (
        f"sqlite:///{tmp_path}/no/such/dir/mina.db"
        if EMBEDDED
        else "postgresql://postgres@127.0.0.1:1/mina_nowhere"
    )
    env(database_url=away)
    try:
        client = create_app(get_settings()).test_client()
        for r in (
            client.get(f"/api/conversations/{created['id']}", headers=bearer(created["token"])),
            client.post("/api/conversations", json={"title": "x"}),
        ):
            assert r.status_code == 503, r.get_data()[:300]
            assert r.get_json()["error"]["code"] == "database_unavailable"
            assert r.headers["Retry-After"] == "1"
        assert client.get("/healthz").status_code == 200  # the process itself is alive
    finally:
        db.configure(clean_db)
    assert (
        good.get(
            f"/api/conversations/{created['id']}", headers=bearer(created["token"])
        ).status_code
        == 200
    )
