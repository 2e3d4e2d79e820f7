"""Search over revealed transcripts (docs/memory.md): the index written at the reveal and on a
rename, the query language, filters, access by token, and every bad parameter as a 400."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from mina.db import session_scope
from mina.memory.models import Utterance
from mina.pipeline import post
from mina.settings import get_settings
from tests.fixtures.memory import revealed, seg
from tests.fixtures.stack import OPERATOR, bearer

pytestmark = pytest.mark.embedded


def find(client: Any, auth: dict[str, str], **params: Any) -> dict[str, Any]:
    r = client.get("/api/search", query_string=params, headers=auth)
    assert r.status_code == 200, r.get_json()
    body: dict[str, Any] = r.get_json()
    return body


def test_a_revealed_transcript_is_found_with_snippet_speaker_time_and_links(client: Any) -> None:
    cid, auth = revealed(
        client,
        [
            seg(0.0, "Good morning, thanks for joining."),
            seg(4.5, "We are releasing the new roadmap in March.", "S2"),
            seg(9.0, "The customer report is late again."),
        ],
        title="Product sync",
    )
    body = find(client, OPERATOR, q="release roadmap")  # stemmed: releasing ~ release
    assert len(body["hits"]) == 1 and body["next_offset"] is None
    hit = body["hits"][0]
    assert hit["conversation_id"] == cid and hit["title"] == "Product sync"
    assert (hit["speaker"], hit["speaker_label"], hit["start"]) == ("S2", "S2", 4.5)
    assert "<mark>releasing</mark>" in hit["snippet"] and "<mark>roadmap</mark>" in hit["snippet"]
    assert hit["link"] == f"/dashboard#c={cid}&t=4.5"
    assert hit["audio"] is False and hit["audio_url"] is None  # no merged audio in this meeting
    # the participant's own search links to the participant page
    mine = find(client, auth, q="customer report")
    assert [h["link"] for h in mine["hits"]] == [f"/c/{cid}#t=9.0"]


def test_query_language_phrases_alternatives_and_exclusions(client: Any) -> None:
    revealed(
        client,
        [
            seg(0.0, "The customer report is late."),
            seg(5.0, "Report the customer feedback tomorrow."),
            seg(10.0, "Budget for March is approved."),
        ],
    )

    def starts(q: str) -> list[float]:
        return sorted(h["start"] for h in find(client, OPERATOR, q=q)["hits"])

    assert starts('"customer report"') == [0.0]
    assert starts("customer report") == [0.0, 5.0]
    assert starts("budget or feedback") == [5.0, 10.0]
    assert starts("customer -feedback") == [0.0]
    assert starts("nothing-like-this-was-said") == []


def test_snippets_escape_what_was_said(client: Any) -> None:
    revealed(client, [seg(0.0, "Type <b>bold</b> & press enter in the editor.")])
    hit = find(client, OPERATOR, q="editor")["hits"][0]
    assert "<b>" not in hit["snippet"] and "&amp;" in hit["snippet"]
    assert "<mark>editor</mark>" in hit["snippet"]


def test_filters_speaker_dates_conversation_and_pages(client: Any) -> None:
    old, _ = revealed(
        client,
        [seg(0.0, "The budget is tight.", "S1"), seg(4.0, "The budget is fine.", "S2")],
        created_at=datetime(2026, 1, 10, 9, 0),
    )
    new, _ = revealed(
        client,
        [seg(i * 5.0, f"Budget item number {i}.", "S1") for i in range(5)],
        created_at=datetime(2026, 3, 2, 9, 0),
    )
    assert {h["conversation_id"] for h in find(client, OPERATOR, q="budget")["hits"]} == {old, new}
    jan = find(client, OPERATOR, q="budget", to="2026-01-10")["hits"]  # a date: the whole day
    assert {h["conversation_id"] for h in jan} == {old}
    march = find(client, OPERATOR, q="budget", **{"from": "2026-03-02T00:00:00+00:00"})
    assert {h["conversation_id"] for h in march["hits"]} == {new}
    s2 = find(client, OPERATOR, q="budget", speaker="s2")["hits"]
    assert [(h["conversation_id"], h["start"]) for h in s2] == [(old, 4.0)]
    only = find(client, OPERATOR, q="budget", conversation=old)["hits"]
    assert len(only) == 2 and {h["conversation_id"] for h in only} == {old}
    first = find(client, OPERATOR, q="budget", limit=4)
    assert len(first["hits"]) == 4 and first["next_offset"] == 4
    rest = find(client, OPERATOR, q="budget", limit=4, offset=4)
    assert len(rest["hits"]) == 3 and rest["next_offset"] is None
    seen = [(h["conversation_id"], h["start"]) for h in first["hits"] + rest["hits"]]
    assert len(set(seen)) == 7


def test_a_rename_is_searchable_by_the_new_name(client: Any) -> None:
    cid, auth = revealed(client, [seg(0.0, "Ship it on Friday.", "S1"), seg(4.0, "Agreed.", "S2")])
    r = client.put(f"/api/conversations/{cid}/speakers/S1", json={"name": "Dana"}, headers=auth)
    assert r.status_code == 200, r.get_json()
    hits = find(client, OPERATOR, q="friday", speaker="dana")["hits"]
    assert [(h["speaker"], h["speaker_label"]) for h in hits] == [("Dana", "S1")]
    assert find(client, OPERATOR, q="friday", speaker="S1")["hits"]  # the label still works


def test_a_second_reveal_indexes_again_without_duplicates(client: Any) -> None:
    from mina.models import Conversation
    from mina.pipeline.conversation_state import RUNNING

    cid, _ = revealed(client, [seg(0.0, "One utterance only.")])
    with session_scope() as s:
        s.get(Conversation, cid).processing_status = RUNNING  # type: ignore[union-attr]
    assert post.reveal(cid, get_settings())
    with session_scope() as s:
        count = s.scalar(select(func.count()).where(Utterance.conversation_id == cid))
    assert count == 1
    assert len(find(client, OPERATOR, q="utterance")["hits"]) == 1


def test_a_participant_searches_only_its_own_conversation(client: Any) -> None:
    mine, auth = revealed(client, [seg(0.0, "The secret plan for launch.")])
    other, _ = revealed(client, [seg(0.0, "Another secret plan.")])
    assert [h["conversation_id"] for h in find(client, auth, q="secret")["hits"]] == [mine]
    r = client.get("/api/search", query_string={"q": "secret", "conversation": other}, headers=auth)
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "forbidden"
    r = client.get("/api/search", query_string={"q": "secret"})
    assert r.status_code == 401
    r = client.get("/api/search", query_string={"q": "secret"}, headers=bearer("not-a-token"))
    assert r.status_code == 403


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "x" * 201},
        {"q": "?!"},
        {"q": "a", "limit": 0},
        {"q": "a", "limit": 101},
        {"q": "a", "offset": -1},
        {"q": "a", "offset": 10_001},
        {"q": "a", "limit": "many"},
        {"q": "a", "from": "yesterday"},
        {"q": "a", "to": "2026-13-01"},
        {"q": "a", "to": "9999-12-31"},
        {"q": "a", "from": "2026-03-01", "to": "2026-02-01"},
        {"q": "a", "conversation": "../etc"},
        {"q": "a", "speaker": ""},
        {"q": "a", "bogus": "1"},
    ],
)
def test_bad_parameters_are_400_json(client: Any, params: dict[str, Any]) -> None:
    r = client.get("/api/search", query_string=params, headers=OPERATOR)
    assert r.status_code == 400, (params, r.status_code, r.get_data(as_text=True))
    assert r.get_json()["error"]["code"] in ("invalid_query", "invalid_body")


def test_the_openapi_document_bounds_the_search_parameters(client: Any) -> None:
    doc = client.get("/openapi.json").get_json()
    params = {p["name"]: p["schema"] for p in doc["paths"]["/api/search"]["get"]["parameters"]}
    assert params["limit"]["minimum"] == 1 and params["limit"]["maximum"] == 100
    assert params["offset"]["maximum"] == 10_000 and params["q"]["maxLength"] == 200


@pytest.mark.services_only  # PostgreSQL's text search configurations (SQLite: porter, English)
def test_each_meeting_is_matched_in_its_own_language(client: Any) -> None:
    german, _ = revealed(client, [seg(0.0, "Die Häuser am Hafen sind verkauft.")], language="de")
    english, _ = revealed(client, [seg(0.0, "The houses by the harbour are sold.")])
    unknown, _ = revealed(client, [seg(0.0, "Dom w porcie został sprzedany.")], language="pl")
    assert [h["conversation_id"] for h in find(client, OPERATOR, q="Haus")["hits"]] == [german]
    assert [h["conversation_id"] for h in find(client, OPERATOR, q="house")["hits"]] == [english]
    # PostgreSQL has no Polish configuration: words match as written, without stemming
    assert [h["conversation_id"] for h in find(client, OPERATOR, q="sprzedany")["hits"]] == [
        unknown
    ]
    assert find(client, OPERATOR, q="sprzeda")["hits"] == []
    with session_scope() as s:
        configs = dict(
            s.execute(select(Utterance.conversation_id, Utterance.config)).tuples().all()
        )
    assert configs == {german: "german", english: "english", unknown: "simple"}
