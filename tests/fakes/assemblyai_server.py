"""A fake AssemblyAI v2 API: upload, transcript jobs, and the webhook it calls back.

- `POST /v2/upload` (raw bytes) → `{"upload_url"}` served by the fake itself;
- `POST /v2/transcript` → a job `queued`; a thread downloads `audio_url` (an upload URL or a
  presigned S3 GET), measures it with ffprobe, and after `job_seconds` completes it with two
  speaker-labelled utterances, or fails it when the download fails, as AssemblyAI does;
- then, when the job asked for one, it POSTs `{"transcript_id", "status"}` to `webhook_url` with
  the requested auth header, `webhook_repeats` times, and records the answers;
- `GET /v2/transcript/{id}` → the job.
`hold = True` keeps jobs `processing` until `release()` (all) or `release(job_id)` (one);
`send_webhooks = False` never calls back.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request, Response

from mina import audio
from mina.errors import MinaError
from tests.fakes.server import Call, FakeServer, error, ok


class FakeAssemblyAI(FakeServer):
    def __init__(self, api_key: str = "aai-test") -> None:
        super().__init__()
        self.api_key = api_key
        self.jobs: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, bytes] = {}
        self.job_seconds = 0.2
        self.hold = False
        self.send_webhooks = True
        self.webhook_repeats = 1
        self.webhook_answers: list[int] = []
        self._released: set[str] = set()

    def routes(self) -> list[Any]:
        return [
            ("POST", "/v2/upload", "upload", self.upload),
            ("POST", "/v2/transcript", "submit", self.submit),
            ("GET", "/v2/transcript/", "fetch", self.fetch),
            ("GET", "/files/", "file", self.file),
        ]

    def release(self, job_id: str | None = None) -> None:
        if job_id is None:
            self.hold = False
        else:
            self._released.add(job_id)

    def status(self, job_id: str) -> str:
        with self.lock:
            return str(self.jobs[job_id]["status"])

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == self.api_key

    def upload(self, request: Request, call: Call) -> Response:
        if not self._authorized(request):
            return error(401, "unauthorized", "Authentication error, API token missing/invalid")
        name = uuid.uuid4().hex
        self.uploads[name] = request.get_data()
        return ok({"upload_url": f"{self.url}/files/{name}"})

    def file(self, request: Request, call: Call) -> Response:
        data = self.uploads.get(request.path.rsplit("/", 1)[-1])
        if data is None:
            return error(404, "not_found", "no such upload")
        return Response(data, mimetype="application/octet-stream")

    def submit(self, request: Request, call: Call) -> Response:
        if not self._authorized(request):
            return error(401, "unauthorized", "Authentication error, API token missing/invalid")
        body = request.get_json(silent=True) or {}
        call.body = body
        if not body.get("audio_url"):
            return error(400, "bad_request", "audio_url is required")
        job_id = uuid.uuid4().hex
        job = {"id": job_id, "status": "queued", "audio_url": body["audio_url"], "request": body}
        with self.lock:
            self.jobs[job_id] = job
        threading.Thread(target=self._work, args=(job_id,), daemon=True).start()
        return ok({k: v for k, v in job.items() if k != "request"})

    def fetch(self, request: Request, call: Call) -> Response:
        if not self._authorized(request):
            return error(401, "unauthorized", "Authentication error, API token missing/invalid")
        with self.lock:
            job = self.jobs.get(request.path.rsplit("/", 1)[-1])
            public = None if job is None else {k: v for k, v in job.items() if k != "request"}
        if public is None:
            return error(404, "not_found", "Transcript not found")
        return ok(public)

    # --- the job ---------------------------------------------------------------------------

    def _work(self, job_id: str) -> None:
        job = self.jobs[job_id]
        job["status"] = "processing"
        time.sleep(self.job_seconds)
        while self.hold and job_id not in self._released:
            time.sleep(0.05)
        result = self._transcribe(job["audio_url"])
        with self.lock:
            job.update(result)
        self._notify(job)

    def _transcribe(self, url: str) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                data = response.read()
        except (urllib.error.URLError, OSError) as exc:
            return {"status": "error", "error": f"Download error, unable to download {url}: {exc}"}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "audio"
            path.write_bytes(data)
            try:
                seconds = audio.duration(path)
            except MinaError as exc:
                return {"status": "error", "error": f"Transcoding failed: {exc}"}
        half = int(seconds * 500)
        words_a = [
            {"text": "Fake", "start": 0, "end": half // 2, "speaker": "A"},
            {"text": "utterance one.", "start": half // 2, "end": half, "speaker": "A"},
        ]
        words_b = [
            {"text": "Fake", "start": half, "end": half + half // 2, "speaker": "B"},
            {"text": "utterance two.", "start": half + half // 2, "end": 2 * half, "speaker": "B"},
        ]
        return {
            "status": "completed",
            "text": "Fake utterance one. Fake utterance two.",
            "audio_duration": seconds,
            "language_code": "en",
            "words": words_a + words_b,
            "utterances": [
                {
                    "speaker": "A",
                    "start": 0,
                    "end": half,
                    "text": "Fake utterance one.",
                    "words": words_a,
                },
                {
                    "speaker": "B",
                    "start": half,
                    "end": 2 * half,
                    "text": "Fake utterance two.",
                    "words": words_b,
                },
            ],
            "audio_bytes": len(data),
        }

    def _notify(self, job: dict[str, Any]) -> None:
        request = job["request"]
        if not self.send_webhooks or not request.get("webhook_url"):
            return
        headers = {"Content-Type": "application/json"}
        if request.get("webhook_auth_header_name"):
            headers[request["webhook_auth_header_name"]] = request["webhook_auth_header_value"]
        body = json.dumps({"transcript_id": job["id"], "status": job["status"]}).encode()
        for _ in range(self.webhook_repeats):
            post = urllib.request.Request(
                request["webhook_url"], data=body, headers=headers, method="POST"
            )
            try:
                with urllib.request.urlopen(post, timeout=10) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                status = 0
            with self.lock:
                self.webhook_answers.append(status)
