"""/openapi.json is generated from the request schemas and covers every API route."""

from __future__ import annotations

import re
from typing import Any

import pytest

pytestmark = pytest.mark.embedded


def spec_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def test_every_api_route_is_documented(app: Any, client: Any) -> None:
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    documented = {path: set(ops) for path, ops in spec["paths"].items()}
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/api/", "/webhooks/")):
            continue
        path = spec_path(rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if method.lower() not in documented.get(path, set()):
                missing.append(f"{method} {path}")
    assert missing == []


def test_request_schemas_are_the_validating_models(client: Any) -> None:
    spec = client.get("/openapi.json").get_json()
    create = spec["paths"]["/api/conversations"]["post"]
    ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    name = ref.rsplit("/", 1)[-1]
    schema = spec["components"]["schemas"][name]
    assert schema["properties"]["title"]["anyOf"][0]["maxLength"] == 200
    # the same model refuses what the document forbids
    r = client.post("/api/conversations", json={"title": "x" * 201})
    assert r.status_code == 400 and r.get_json()["error"]["code"]
