"""Meeting notes over the API (`GET /api/conversations/{id}/notes`): the document a person reads,
for the participant of that conversation and for operators, built by `mina.minutes` like
`mina process --format md`. Real audio, real transcriber, real workers."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.fixtures.audio import Meeting, meeting
from tests.fixtures.stack import OPERATOR, bearer, wait_for

pytestmark = pytest.mark.embedded


@pytest.fixture(scope="module")
def one_minute(tmp_path_factory: pytest.TempPathFactory) -> Meeting:
    return meeting(tmp_path_factory.mktemp("notes"), minutes=1.0, chunk_seconds=30)


def create(client: Any, title: str) -> tuple[str, dict[str, str]]:
    r = client.post("/api/conversations", json={"title": title})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"], bearer(r.get_json()["token"])


def upload(client: Any, cid: str, auth: dict[str, str], one_minute: Meeting) -> None:
    for index, path in enumerate(one_minute.chunks):
        with path.open("rb") as fh:
            r = client.post(
                f"/api/conversations/{cid}/chunks",
                data={"index": str(index), "file": (fh, path.name)},
                headers=auth,
                content_type="multipart/form-data",
            )
        assert r.status_code == 202, r.get_json()


def test_notes_of_a_finished_meeting_as_markdown_and_json(
    client: Any, workers: Any, one_minute: Meeting
) -> None:
    workers(threads=2)
    cid, auth = create(client, "Weekly product meeting")
    upload(client, cid, auth, one_minute)

    # While the meeting is still being recorded, the notes say what is still to come.
    early = client.get(f"/api/conversations/{cid}/notes", headers=auth)
    assert early.status_code == 200
    assert {"summary", "action items", "transcript"} <= set(early.get_json()["pending"])

    assert client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth).status_code == 202
    url = f"/api/conversations/{cid}"
    seen: list[dict[str, Any]] = []

    def revealed() -> bool:
        seen.append(client.get(url, headers=auth).get_json())
        return seen[-1]["processing_status"] in ("ready", "partial", "failed")

    wait_for(revealed, 180)
    assert seen[-1]["processing_status"] == "ready", seen[-1]

    doc = client.get(f"{url}/notes?format=json", headers=auth).get_json()
    assert doc["title"] == "Weekly product meeting" and doc["pending"] == []
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", doc["date"])
    assert abs(doc["duration_seconds"] - one_minute.script.duration) < 1.0
    assert doc["summary"] and doc["action_items"] and len(doc["speakers"]) >= 2
    assert {t["speaker"] for t in doc["transcript"]} == {s["speaker"] for s in doc["speakers"]}
    item = doc["action_items"][0]
    assert item["owner"] and item["time"] is not None

    r = client.get(f"{url}/notes?format=md", headers=auth)
    assert r.status_code == 200 and r.mimetype == "text/markdown"
    md = r.get_data(as_text=True)
    assert md.startswith("# Weekly product meeting\n")
    duration = int(doc["duration_seconds"])
    assert f"- **Duration:** {duration // 60:02d}:{duration % 60:02d}" in md
    for heading in ("## Summary", "## Action items", "## Speakers", "## Transcript"):
        assert f"\n{heading}\n" in md, md
    assert "| action | owner | due | time |" in md
    assert f"| {item['text']} | {item['owner']} |" in md
    turns = re.findall(r"^\*\*(\d\d:\d\d) (\S+):\*\* (.+)$", md, flags=re.M)
    assert len(turns) == len(doc["transcript"]) >= 2
    assert turns[0][0] == "00:00"
    assert not re.search(r"\d+\.\d+s", md)  # times as mm:ss, never 136.3s

    # The operator reads any conversation's notes, the same document.
    ops = client.get(f"{url}/notes", headers=OPERATOR).get_json()
    assert ops == doc


def test_notes_refuse_the_wrong_token_an_unknown_id_and_an_unknown_format(
    client: Any,
) -> None:
    cid, auth = create(client, "mine")
    _other, other_auth = create(client, "theirs")
    r = client.get(f"/api/conversations/{cid}/notes", headers=other_auth)
    assert r.status_code == 403 and r.get_json()["error"]["code"]
    r = client.get(f"/api/conversations/{cid}/notes")
    assert r.status_code == 401
    r = client.get("/api/conversations/0123456789abcdef0123456789abcdef/notes", headers=auth)
    assert r.status_code in (403, 404)
    r = client.get(f"/api/conversations/{cid}/notes?format=pdf", headers=auth)
    assert r.status_code == 400 and "format" in r.get_json()["error"]["message"]
    # A conversation with nothing recorded yet has notes that say so.
    r = client.get(f"/api/conversations/{cid}/notes?format=md", headers=auth)
    assert r.status_code == 200
    assert "No speech was transcribed." in r.get_data(as_text=True)
    assert "# mine\n" in r.get_data(as_text=True)


def test_notes_are_in_the_openapi_document(client: Any) -> None:
    spec = client.get("/openapi.json").get_json()
    op = spec["paths"]["/api/conversations/{conversation_id}/notes"]["get"]
    params = {p["name"]: p for p in op["parameters"]}
    assert "format" in params
    assert {"200", "400", "401", "403", "404"} <= set(op["responses"])
