"""Languages (issue 16): a conversation's language given at creation or detected per chunk,
stored, shown in the API and the notes, and used by post-processing. Spanish and German espeak
meetings are transcribed in their own language by the multilingual `base` model."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import jiwer
import pytest
from sqlalchemy import select

from mina import audio, conversations, languages
from mina.db import session_scope
from mina.models import Conversation, Event
from mina.synth import Line, make_meeting
from tests.fixtures.stack import OPERATOR, bearer, wait_for

pytestmark = pytest.mark.embedded

SPANISH = [
    Line("Ana", "Buenos días a todos. Empezamos la reunión semanal del equipo de producto."),
    Line("Luis", "Gracias Ana. Primero hablamos del presupuesto para el próximo trimestre."),
    Line("Ana", "Muy bien. El cliente necesita el informe antes del viernes por la tarde."),
    Line("Luis", "Yo puedo preparar el informe mañana y enviarlo a todo el equipo."),
]
GERMAN = [
    Line("Anna", "Guten Morgen zusammen. Wir beginnen mit der Planung für die nächste Woche."),
    Line("Lukas", "Danke Anna. Der Kunde wartet noch auf den Bericht über das neue Produkt."),
    Line("Anna", "Gut. Kannst du den Bericht bis Freitag an das ganze Team schicken?"),
    Line("Lukas", "Ja, das mache ich morgen früh. Dann besprechen wir die Zahlen am Montag."),
]


def words(text: str) -> str:
    """Lower case, accents and punctuation gone: the same for the script and the transcript."""
    plain = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(c for c in plain if not unicodedata.combining(c)).replace("ß", "ss")
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", plain).split())


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(words(reference), words(hypothesis)))


def spoken(tmp: Path, lines: list[Line], voice: str, seconds: float) -> tuple[str, list[Path]]:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "meeting.ogg"
    voices = {lines[0].speaker: f"{voice}+f3", lines[1].speaker: f"{voice}+m3"}
    script = make_meeting(lines, path, voices=voices)
    return script.text, audio.split(path, seconds, tmp / "chunks", ext="ogg")


def create(client: Any, **body: Any) -> Any:
    return client.post("/api/conversations", json={"title": "reunión", **body})


def record(client: Any, chunks: list[Path], **body: Any) -> tuple[str, dict[str, str]]:
    r = create(client, **body)
    assert r.status_code == 201, r.get_json()
    cid, auth = r.get_json()["id"], bearer(r.get_json()["token"])
    for index, path in enumerate(chunks):
        with path.open("rb") as fh:
            r = client.post(
                f"/api/conversations/{cid}/chunks",
                data={"index": str(index), "file": (fh, path.name)},
                headers=auth,
                content_type="multipart/form-data",
            )
        assert r.status_code == 202, r.get_json()
    assert client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth).status_code == 202
    url = f"/api/conversations/{cid}"
    over = ("ready", "partial", "failed")
    wait_for(lambda: client.get(url, headers=auth).get_json()["processing_status"] in over, 300)
    return cid, auth


def transcript_text(client: Any, cid: str, auth: dict[str, str]) -> str:
    body = client.get(f"/api/conversations/{cid}/transcript", headers=auth).get_json()
    return " ".join(s["text"] for s in body["segments"])


def detections(cid: str) -> list[dict[str, Any]]:
    with session_scope() as s:
        q = select(Event.payload).where(
            Event.conversation_id == cid, Event.type == languages.DETECTED
        )
        return [dict(p) for p in s.scalars(q.order_by(Event.id))]


# --- the rule, on the database -----------------------------------------------------------------


def test_auto_keeps_detecting_per_chunk_until_a_sure_answer_then_uses_it(clean_db: str) -> None:
    with session_scope() as s:
        conv, _ = conversations.create(s, "auto", None)
        cid = conv.id
    assert languages.for_chunk(cid) == "auto"
    languages.observe(cid, "auto", "es", 0.55, 0)  # the first chunk is unsure
    assert languages.for_chunk(cid) == "auto"  # so the next chunk detects again
    languages.observe(cid, "auto", "pt", 0.40, 2)  # less sure than the first: not kept
    languages.observe(cid, "auto", "Spanish", 0.93, 1)  # a name, sure: settles it
    assert languages.for_chunk(cid) == "es"
    languages.observe(cid, "auto", "it", 0.99, 3)  # settled: later answers change nothing
    with session_scope() as s:
        stored = s.get(Conversation, cid)
        assert stored is not None and stored.language == "es"
    assert [(d["language"], d["sure"], d["chunk_index"]) for d in detections(cid)] == [
        ("es", False, 0),
        ("es", True, 1),
    ]


def test_the_claim_reads_the_language_for_chunk_gives(clean_db: str) -> None:
    """The worker reads the language in its claim's own statement (`claim_columns`): the same
    answer as `for_chunk` for no language, an unsure detection, a sure one and a given one."""
    from mina.pipeline import chunk_state
    from mina.settings import get_settings
    from tests.fixtures.conversations import chunk_rows

    made: dict[str, int] = {}

    def claimed(cid: str) -> str:
        made[cid] = made.get(cid, 0) + 1
        with session_scope() as s:
            row = chunk_rows(cid, ["queued"] * made[cid])[-1]  # the next index
            s.add(row)
            s.flush()
            taken = chunk_state.claim_in(s, row.id, get_settings(), *languages.claim_columns())
        assert taken is not None
        return languages.chosen(*taken[1])

    with session_scope() as s:
        auto, _ = conversations.create(s, "auto", None)
        given, _ = conversations.create(s, "given", "de")
        cid, de = auto.id, given.id
    seen = [(claimed(cid), languages.for_chunk(cid))]
    languages.observe(cid, "auto", "es", 0.55, 0)  # unsure: `language` is set, still auto
    seen.append((claimed(cid), languages.for_chunk(cid)))
    languages.observe(cid, "auto", "es", 0.93, 1)  # sure
    seen.append((claimed(cid), languages.for_chunk(cid)))
    seen.append((claimed(de), languages.for_chunk(de)))
    assert seen == [("auto", "auto"), ("auto", "auto"), ("es", "es"), ("de", "de")]


def test_a_given_language_is_used_for_every_chunk(clean_db: str) -> None:
    with session_scope() as s:
        conv, _ = conversations.create(s, "given", "de")
        cid = conv.id
    languages.observe(cid, "de", "de", 0.99, 0)  # asked in German: nothing to detect
    assert languages.for_chunk(cid) == "de" and detections(cid) == []


# --- the API -----------------------------------------------------------------------------------


def test_create_takes_a_validated_language_and_the_status_shows_it(client: Any, env: Any) -> None:
    r = create(client, language="xx")
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_language"
    assert "xx" in r.get_json()["error"]["message"]
    # The English-only model cannot transcribe Spanish: refused with what to change.
    env(whisper_model="tiny.en")
    from api import create_app
    from mina.settings import get_settings

    english = create_app(get_settings()).test_client()
    r = create(english, language="es")
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "unsupported_language"
    assert "MINA_WHISPER_MODEL=base" in r.get_json()["error"]["message"]
    r = create(english, language="EN")
    assert r.status_code == 201 and r.get_json()["language"] == "en"
    r = create(english, language="auto")
    assert r.status_code == 201 and r.get_json()["language"] is None
    cid = r.get_json()["id"]
    view = english.get(f"/api/conversations/{cid}", headers=OPERATOR).get_json()
    assert "language" in view and view["language"] is None
    spec = english.get("/openapi.json").get_json()
    assert "language" in str(spec["components"]["schemas"])


def test_english_only_steps_say_so_for_another_language(
    client: Any, env: Any, workers: Any, tmp_path: Path
) -> None:
    env(transcriber="simulated", sim_latency_seconds=0.05, language_provider="local")
    workers(threads=2)
    from api import create_app
    from mina.settings import get_settings

    app = create_app(get_settings()).test_client()
    _, chunks = spoken(tmp_path, GERMAN, "de", 30)
    cid, auth = record(app, chunks, language="de")
    status = app.get(f"/api/conversations/{cid}", headers=auth).get_json()
    assert status["language"] == "de" and status["processing_status"] == "ready", status
    detail = app.get(f"/api/operator/conversations/{cid}", headers=OPERATOR).get_json()
    assert detail["conversation"]["language"] == "de"
    tasks = app.get(f"/api/conversations/{cid}/tasks", headers=auth).get_json()
    assert tasks["items"] == []
    assert (
        tasks["notice"] == "Action items and due dates are found only in English; "
        "this conversation is in German"
    )
    analytics = app.get(f"/api/conversations/{cid}/analytics", headers=auth).get_json()
    assert analytics["fillers_counted"] is False
    assert analytics["notices"] == [
        "Filler words are counted only in English; this conversation is in German"
    ]
    md = app.get(f"/api/conversations/{cid}/notes?format=md", headers=auth).get_data(as_text=True)
    assert "- **Language:** German (de)" in md
    assert "Action items and due dates are found only in English" in md
    assert "> Filler words are counted only in English" in md


# --- real speech with the multilingual model -----------------------------------------------


@pytest.mark.slow
def test_spanish_detected_and_german_given_are_transcribed_in_their_language(
    client: Any, env: Any, workers: Any, tmp_path: Path
) -> None:
    env(whisper_model="base", language="auto", language_provider="local")
    workers(threads=2)
    from api import create_app
    from mina.settings import get_settings

    app = create_app(get_settings()).test_client()

    reference, chunks = spoken(tmp_path / "es", SPANISH, "es", 15)
    assert len(chunks) >= 2
    cid, auth = record(app, chunks)  # no language: MINA_LANGUAGE=auto detects it
    status = app.get(f"/api/conversations/{cid}", headers=auth).get_json()
    assert status["language"] == "es", (status, detections(cid))
    assert detections(cid)[-1]["sure"] is True
    text = transcript_text(app, cid, auth)
    assert wer(reference, text) < 0.5, text  # English output of this speech: ~1.0

    reference, chunks = spoken(tmp_path / "de", GERMAN, "de", 15)
    cid, auth = record(app, chunks, language="de")
    status = app.get(f"/api/conversations/{cid}", headers=auth).get_json()
    assert status["language"] == "de" and detections(cid) == []
    text = transcript_text(app, cid, auth)
    assert wer(reference, text) < 0.5, text  # English output of this speech: ~1.0
    notes = app.get(f"/api/conversations/{cid}/notes", headers=auth).get_json()
    assert notes["language"] == "de" and notes["action_note"]
