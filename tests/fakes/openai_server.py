"""A fake OpenAI API: `/v1/audio/transcriptions` (verbose_json) and `/v1/chat/completions`.

Transcription answers one segment per 5 s of the uploaded WAV ("Fake segment N."), refuses a
file over `max_bytes` with 413 (as OpenAI's 25 MB limit) and anything not WAV with 400.
Chat completions answer the schema they are asked for (`response_format.json_schema.name`:
refinement, tasks, summary), after checking the schema is valid for OpenAI's strict mode
(every property required, no additional properties), else 400 as the real API does.
`invalid[task] = n` makes the next n answers for that task invalid output.
"""

from __future__ import annotations

import io
import json
import re
import wave
from collections import defaultdict
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.fakes.server import Call, FakeServer, error, ok

SEGMENT_SECONDS = 5.0


class FakeOpenAI(FakeServer):
    def __init__(self, api_key: str = "sk-test", max_bytes: int = 25 * 1024 * 1024) -> None:
        super().__init__()
        self.api_key = api_key
        self.max_bytes = max_bytes
        self.invalid: dict[str, int] = defaultdict(int)
        self.summary_title = "Fake summary title"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def routes(self) -> list[Any]:
        return [
            ("POST", "/v1/audio/transcriptions", "asr", self.transcribe),
            ("POST", "/v1/chat/completions", "chat", self.chat),
        ]

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    # --- audio -----------------------------------------------------------------------------

    def transcribe(self, request: Request, call: Call) -> Response:
        if not self._authorized(request):
            return error(401, "invalid_api_key", "Incorrect API key provided")
        upload = request.files.get("file")
        if upload is None or not request.form.get("model"):
            return error(400, "invalid_request_error", "file and model are required")
        data = upload.read()
        call.body = {"bytes": len(data), **request.form.to_dict()}
        if len(data) > self.max_bytes:
            return error(413, "request_too_large", f"{len(data)} bytes > {self.max_bytes}")
        try:
            with wave.open(io.BytesIO(data), "rb") as w:
                seconds = w.getnframes() / float(w.getframerate())
        except (wave.Error, EOFError):
            return error(400, "invalid_request_error", "Invalid file format.")
        segments = []
        start, n = 0.0, 1
        while start < seconds:
            end = min(seconds, start + SEGMENT_SECONDS)
            segments.append(_segment(n - 1, start, end, f"Fake segment {n}."))
            start, n = end, n + 1
        if request.form.get("response_format") != "verbose_json":
            return ok({"text": " ".join(s["text"] for s in segments)})
        return ok(
            {
                "task": "transcribe",
                "language": "english",
                "duration": seconds,
                "text": " ".join(s["text"] for s in segments),
                "segments": segments,
            }
        )

    # --- chat ------------------------------------------------------------------------------

    def chat(self, request: Request, call: Call) -> Response:
        if not self._authorized(request):
            return error(401, "invalid_api_key", "Incorrect API key provided")
        body = request.get_json(silent=True) or {}
        fmt = body.get("response_format") or {}
        spec = fmt.get("json_schema") or {}
        name = str(spec.get("name", ""))
        call.body = {"task": name, "model": body.get("model")}
        problem = strict_problem(spec.get("schema") or {}) if spec.get("strict") else None
        if fmt.get("type") != "json_schema" or problem:
            return error(400, "invalid_request_error", f"Invalid schema: {problem}")
        user = next((m["content"] for m in body.get("messages", []) if m["role"] == "user"), "")
        with self.lock:
            invalid = self.invalid[name] > 0
            self.invalid[name] -= int(invalid)
        content = (
            '{"oops": "not what you asked for"' if invalid else json.dumps(self.answer(name, user))
        )
        return ok(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "fake"),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": content, "refusal": None},
                    }
                ],
            }
        )

    def answer(self, task: str, user: str) -> dict[str, Any]:
        if task == "refinement":
            lines = re.findall(r"^\d+\. ?(.*)$", user, flags=re.MULTILINE)
            return {"texts": [line.strip().capitalize() for line in lines]}
        if task == "tasks":
            item = {
                "text": "Send the fake report",
                "said_as": "team",
                "addressee": None,
                "due": None,
                "source_time": 0.0,
                "confidence": 0.9,
            }
            return {"items": [item]}
        return {
            "title": self.summary_title,
            "summary": "A fake meeting happened.",
            "key_points": ["Fakes were discussed."],
            "decisions": [],
            "open_questions": [],
        }


def _segment(n: int, start: float, end: float, text: str) -> dict[str, Any]:
    return {
        "id": n,
        "seek": 0,
        "start": round(start, 3),
        "end": round(end, 3),
        "text": text,
        "tokens": [1, 2, 3],
        "temperature": 0.0,
        "avg_logprob": -0.2,
        "compression_ratio": 1.2,
        "no_speech_prob": 0.01,
    }


def strict_problem(schema: Any, where: str = "$") -> str | None:
    """What OpenAI's strict mode would refuse in `schema`, or None."""
    if isinstance(schema, list):
        for n, item in enumerate(schema):
            if found := strict_problem(item, f"{where}[{n}]"):
                return found
        return None
    if not isinstance(schema, dict):
        return None
    if schema.get("type") == "object" or "properties" in schema:
        props = set(schema.get("properties", {}))
        if set(schema.get("required", [])) != props:
            return f"{where}: every property must be required"
        if schema.get("additionalProperties") is not False:
            return f"{where}: additionalProperties must be false"
    if "default" in schema:
        return f"{where}: 'default' is not permitted"
    for key, value in schema.items():
        if found := strict_problem(value, f"{where}.{key}"):
            return found
    return None
