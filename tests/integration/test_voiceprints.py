"""Known speakers (docs/memory.md): real espeak-ng voices in several meetings, diarized by the
real CAM++ diarizer (`diarize_file`, the code diarize_task runs on merged audio), stored as
the diarize task stores its result, revealed by the real `mina.pipeline.post.reveal` (which
recognizes voices after names are learned), and named, carried back and erased through the API.

Voices: "Dana" is en-us+m1; the others are en-us+f3 and en-gb+f2, which CAM++ keeps apart from
en-us+m1 (bench/speakers.py --calibrate). Each meeting has its own lines: no audio is reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from mina.db import session_scope
from mina.insights import speaker_model
from mina.insights.diarize import assign_speakers, diarize_file
from mina.memory import voiceprints
from mina.memory.models import Utterance
from mina.memory.people import Person, VoiceMatch, Voiceprint
from mina.models import Conversation, Event, PostTask
from mina.pipeline import post
from mina.pipeline.conversation_state import RUNNING, TRANSCRIBED
from mina.pipeline.task_state import DONE
from mina.pipeline.task_state import NAMES as TASK_NAMES
from mina.settings import get_settings
from mina.synth import Line, Voice, default_meeting_lines, make_meeting
from mina.transcript import Segment
from tests.fixtures.memory import revealed, seg
from tests.fixtures.stack import OPERATOR, bearer

DANA, ED, FLO = Voice("en-us+m1"), Voice("en-us+f3", pitch=60), Voice("en-gb+f2")
TEXTS = [ln.text for ln in default_meeting_lines(4.0)]


@dataclass
class Diarized:
    result: dict[str, Any]  # as diarize_task stores it
    owner: dict[str, str]  # true voice name -> the label diarization gave it


def _diarized(workdir: Path, model: Any, voices: dict[str, Voice], texts: list[str]) -> Diarized:
    names = list(voices)
    lines = [Line(names[i % len(names)], text) for i, text in enumerate(texts)]
    path = workdir / "meeting.wav"
    script = make_meeting(lines, path, voices)
    found = diarize_file(str(path), model)
    raw = [Segment(start=ln.start, end=ln.end, text=f" {ln.text}") for ln in script.lines]
    labelled = assign_speakers(raw, found.turns)
    owner: dict[str, str] = {}
    for who in names:  # the label holding most of this voice's time
        spoken: dict[str, float] = {}
        for ln in (x for x in script.lines if x.speaker == who):
            for t in found.turns:
                overlap = min(ln.end, t.end) - max(ln.start, t.start)
                if overlap > 0:
                    spoken[t.speaker] = spoken.get(t.speaker, 0.0) + overlap
        owner[who] = max(spoken, key=lambda k: spoken[k])
    result = {
        "source": "diarization",
        "features": "merged audio",
        "speakers": found.speakers,
        "turns": [t.model_dump() for t in found.turns],
        "segments": [s.model_dump() for s in labelled],
        "voices": found.voices,
    }
    return Diarized(result, owner)


@pytest.fixture(scope="module")
def meetings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Diarized]:
    model = speaker_model.load(get_settings().speaker_model, tmp_path_factory.mktemp("data"))
    plan = {
        "a": ({"Dana": DANA, "Ed": ED}, TEXTS[0:12]),
        "b": ({"Dana": DANA, "Flo": FLO}, TEXTS[12:24]),
        "c": ({"Ed": ED, "Flo": FLO}, TEXTS[24:36]),
    }
    out = {}
    for key, (voices, texts) in plan.items():
        out[key] = _diarized(tmp_path_factory.mktemp(key), model, voices, texts)
        assert out[key].result["speakers"] == 2, key  # the test needs diarization to hold
        assert len(set(out[key].owner.values())) == 2, key
    return out


def reveal(client: Any, meeting: Diarized) -> tuple[str, dict[str, str]]:
    """A conversation whose tasks are done with `meeting`'s diarization, revealed for real."""
    r = client.post("/api/conversations", json={"title": "weekly", "language": "en"})
    assert r.status_code == 201
    cid, token = r.get_json()["id"], r.get_json()["token"]
    with session_scope() as s:
        s.execute(
            update(Conversation)
            .where(Conversation.id == cid)
            .values(
                status=TRANSCRIBED,
                is_finished=True,
                is_all_chunks_transcribed=True,
                processing_status=RUNNING,
            )
        )
        for name in TASK_NAMES:
            result: dict[str, Any] = {"items": []} if name == "tasks" else {}
            if name == "diarize":
                result = meeting.result
            s.add(PostTask(conversation_id=cid, name=name, status=DONE, result=result))
    assert post.reveal(cid, get_settings())
    return cid, bearer(token)


def shown(client: Any, cid: str) -> dict[str, dict[str, Any]]:
    r = client.get(f"/api/conversations/{cid}/speakers", headers=OPERATOR)
    assert r.status_code == 200
    return {sp["speaker"]: sp for sp in r.get_json()["speakers"]}


def known(speakers: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Label -> name, for the speakers named by a voiceprint (names learned from what people
    say, "Alice" and "Bob" in these scripts, are not counted)."""
    return {k: v["shown"] for k, v in speakers.items() if v["source"] == "voiceprint"}


def indexed_as(person: str) -> set[str]:
    """The conversations whose search index shows an utterance of `person`."""
    with session_scope() as s:
        query = select(Utterance.conversation_id).where(Utterance.speaker_name == person)
        return set(s.scalars(query))


def name(client: Any, cid: str, label: str, headers: dict[str, str], **body: Any) -> Any:
    return client.put(
        f"/api/conversations/{cid}/speakers/{label}", json={"name": "Dana", **body}, headers=headers
    )


def test_a_named_voice_is_recognized_later_and_other_voices_stay_speaker_n(
    client: Any, meetings: dict[str, Diarized]
) -> None:
    a, b, c = meetings["a"], meetings["b"], meetings["c"]
    cid_a, token_a = reveal(client, a)
    r = name(client, cid_a, a.owner["Dana"], token_a, remember=True)  # the participant, consenting
    assert r.status_code == 200, r.get_json()
    person = r.get_json()["person_id"]
    assert person and r.get_json()["applied_to"] == []
    people = client.get("/api/people", headers=OPERATOR).get_json()["people"]
    assert [(p["id"], p["name"], p["consent"], p["voiceprints"]) for p in people] == [
        (person, "Dana", True, 1)
    ]

    cid_b, _ = reveal(client, b)  # a later meeting: Dana again, with someone new
    speakers = shown(client, cid_b)
    dana, flo = speakers[b.owner["Dana"]], speakers[b.owner["Flo"]]
    assert (dana["shown"], dana["source"]) == ("Dana", "voiceprint")
    assert dana["confidence"] >= voiceprints.THRESHOLD
    assert flo["shown"] == b.owner["Flo"] and flo["name"] is None  # the impostor: "Speaker N"
    with session_scope() as s:
        names = set(
            s.scalars(select(Utterance.speaker_name).where(Utterance.conversation_id == cid_b))
        )
        assert names == {"Dana", b.owner["Flo"]}  # searchable by the name from the reveal on
        match = s.get(VoiceMatch, (cid_b, b.owner["Dana"]))
        assert match is not None and match.how == "matched" and match.person_id == person

    cid_c, _ = reveal(client, c)  # nobody of the voiceprints
    assert not known(shown(client, cid_c)), shown(client, cid_c)

    # the similarity really separates them: the impostors' voices are below the threshold
    with session_scope() as s:
        prints = voiceprints._prints(s)[person]
        assert float((prints @ voiceprints.voices_of(s, cid_b)[b.owner["Dana"]]).max()) >= 0.87
        for cid, meeting, who in ((cid_b, b, "Flo"), (cid_c, c, "Ed"), (cid_c, c, "Flo")):
            vector = voiceprints.voices_of(s, cid)[meeting.owner[who]]
            assert float((prints @ vector).max()) < voiceprints.THRESHOLD, who


def test_a_name_given_in_the_meeting_wins_over_the_voiceprint(
    client: Any, meetings: dict[str, Diarized]
) -> None:
    a, b = meetings["a"], meetings["b"]
    cid_a, token_a = reveal(client, a)
    assert name(client, cid_a, a.owner["Dana"], token_a, remember=True).status_code == 200
    cid_b, token_b = reveal(client, b)
    r = client.put(
        f"/api/conversations/{cid_b}/speakers/Dana", json={"name": "Danielle"}, headers=token_b
    )
    assert r.status_code == 200
    with session_scope() as s:  # an operator's retry settles and recognizes again
        s.execute(
            update(Conversation).where(Conversation.id == cid_b).values(processing_status=RUNNING)
        )
    assert post.reveal(cid_b, get_settings())
    entry = shown(client, cid_b)[b.owner["Dana"]]
    assert (entry["shown"], entry["source"]) == ("Danielle", "user")


def test_a_rename_is_carried_back_to_past_meetings_with_the_same_voice(
    client: Any, meetings: dict[str, Diarized]
) -> None:
    a, b, c = meetings["a"], meetings["b"], meetings["c"]
    cid_a, _ = reveal(client, a)  # before anyone was remembered: nobody named
    cid_c, _ = reveal(client, c)
    cid_b, token_b = reveal(client, b)
    assert not known(shown(client, cid_a))

    r = name(client, cid_b, b.owner["Dana"], token_b, remember=True, apply_to_past=True)
    assert r.status_code == 403  # a participant renames its own meeting only
    assert shown(client, cid_b)[b.owner["Dana"]]["name"] is None  # rolled back with it
    r = name(client, cid_b, b.owner["Dana"], OPERATOR, apply_to_past=True)
    assert r.status_code == 400 and r.get_json()["error"]["code"].startswith("invalid")

    r = name(client, cid_b, b.owner["Dana"], OPERATOR, remember=True, apply_to_past=True)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["applied_to"] == [cid_a]
    past = shown(client, cid_a)
    assert (past[a.owner["Dana"]]["shown"], past[a.owner["Dana"]]["source"]) == (
        "Dana",
        "voiceprint",
    )
    assert known(past) == {a.owner["Dana"]: "Dana"}
    assert not known(shown(client, cid_c))
    assert indexed_as("Dana") == {cid_a, cid_b}  # search shows and filters by the name
    with session_scope() as s:
        types = [e.type for e in s.scalars(select(Event).where(Event.conversation_id == cid_a))]
        assert "speakers_recognized" in types

    # renaming the person again renames the names their voiceprint gave in the past
    r = client.put(
        f"/api/conversations/{cid_b}/speakers/Dana",
        json={"name": "Dana Scully", "remember": True, "apply_to_past": True},
        headers=OPERATOR,
    )
    assert r.status_code == 200 and r.get_json()["applied_to"] == [cid_a]
    assert shown(client, cid_a)[a.owner["Dana"]]["shown"] == "Dana Scully"
    with session_scope() as s:
        assert s.scalar(select(Person.name)) == "Dana Scully"


def test_remembering_needs_a_kept_voice(client: Any) -> None:
    cid, token = revealed(client, [seg(0, "hello there", "S1"), seg(5, "hi", "S2")])
    r = client.put(
        f"/api/conversations/{cid}/speakers/S1",
        json={"name": "Dana", "remember": True},
        headers=token,
    )
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "no_voice"
    r = client.get(f"/api/conversations/{cid}/speakers", headers=token)
    assert all(sp["name"] is None for sp in r.get_json()["speakers"])  # nothing half-done
    r = client.put(
        f"/api/conversations/{cid}/speakers/S1",
        json={"name": "Dana", "remember": "maybe"},
        headers=token,
    )
    assert r.status_code == 400


def test_erasing_a_person_removes_voiceprints_and_names_everywhere(
    client: Any, meetings: dict[str, Diarized]
) -> None:
    a, b, c = meetings["a"], meetings["b"], meetings["c"]
    cid_a, token_a = reveal(client, a)
    person = name(client, cid_a, a.owner["Dana"], token_a, remember=True).get_json()["person_id"]
    cid_b, _ = reveal(client, b)
    cid_c, token_c = reveal(client, c)
    r = client.put(  # a name given without consent: not the person's, it stays
        f"/api/conversations/{cid_c}/speakers/{c.owner['Ed']}", json={"name": "Ed"}, headers=token_c
    )
    assert r.status_code == 200
    assert shown(client, cid_b)[b.owner["Dana"]]["shown"] == "Dana"

    assert client.delete(f"/api/people/{person}").status_code == 401
    assert client.delete(f"/api/people/{person}", headers=token_a).status_code == 403
    r = client.delete(f"/api/people/{person}", headers=OPERATOR)
    assert r.status_code == 200
    assert r.get_json() == {"person_id": person, "voiceprints": 1, "conversations": 2}
    for cid, meeting in ((cid_a, a), (cid_b, b)):
        assert shown(client, cid)[meeting.owner["Dana"]]["name"] is None
    assert shown(client, cid_c)[c.owner["Ed"]]["shown"] == "Ed"
    assert indexed_as("Dana") == set()
    with session_scope() as s:
        assert s.scalars(select(Voiceprint)).all() == []
        assert s.scalars(select(VoiceMatch)).all() == []
        assert s.get(Person, person) is None
        erased = s.scalars(select(Event).where(Event.type == "person_erased")).one()
        assert erased.conversation_id is None and erased.payload["voiceprints"] == 1
    assert client.get("/api/people", headers=OPERATOR).get_json() == {"people": []}
    assert client.delete(f"/api/people/{person}", headers=OPERATOR).status_code == 404

    cid_d, _ = reveal(client, b)  # a later meeting with Dana: not recognized any more
    assert not known(shown(client, cid_d))


def test_unreadable_or_foreign_voices_are_no_voices(
    client: Any, meetings: dict[str, Diarized]
) -> None:
    """Stored voices from another version or model never fail a reveal and never match."""
    a = meetings["a"]
    cid_a, token_a = reveal(client, a)
    assert name(client, cid_a, a.owner["Dana"], token_a, remember=True).status_code == 200
    odd = {
        **a.result,
        "voices": {"S1": [1.0, 2.0, 3.0], "S2": "not a voice", "S3": [0.0] * 192, "S4": [[1]]},
    }
    cid, _ = reveal(client, Diarized(odd, a.owner))
    assert not known(shown(client, cid))
    cid, _ = reveal(client, Diarized({**a.result, "voices": "garbage"}, a.owner))
    assert not known(shown(client, cid))
    with session_scope() as s:
        assert voiceprints.voices_of(s, cid) == {}


def test_listing_people_is_for_operators(client: Any, meetings: dict[str, Diarized]) -> None:
    _, token = reveal(client, meetings["a"])
    assert client.get("/api/people").status_code == 401
    assert client.get("/api/people", headers=token).status_code == 403
    assert client.get("/api/people", headers=OPERATOR).get_json() == {"people": []}
