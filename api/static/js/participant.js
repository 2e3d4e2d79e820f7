/* The participant page: record or pick a file, upload through the IndexedDB queue, follow the
 * ledger live, reveal the results. Everything shown is a function of (local queue, set of ledger
 * events): events are folded sorted by id, so their arrival order never matters. */
"use strict";

(() => {
  const { el, clear, show, clock, api, throttled } = Mina;
  const $ = (id) => document.getElementById(id);
  const root = $("participant");
  const cid = root.dataset.conversationId;
  const sliceSeconds = parseFloat(root.dataset.sliceSeconds) || 30;
  const maxBytes = parseInt(root.dataset.maxChunkBytes, 10);
  const maxSeconds = parseFloat(root.dataset.maxChunkSeconds);
  // A file up to this much longer than a slice is sent whole (no 2 s piece at the end).
  const SLICE_SLACK = 5;
  const token = new URLSearchParams(location.search).get("token");
  const TASKS = MinaLedger.TASKS;
  const TASK_LABELS = {
    merge: "Join audio", diarize: "Find speakers", analytics: "Analytics",
    refinement: "Clean transcript", tasks: "Action items", summary: "Summary",
  };

  const events = new Map();
  let rows = [];
  let meta = null;
  let recorder = null;
  let recordedBefore = 0;
  let revealedId = 0;
  let renamedId = 0;
  let transcriptLoadedFor = 0;
  let speakerTranscript = null;

  const queue = new UploadQueue({
    cid, token,
    onChange: () => refreshQueue(),
    onNotice: (text) => showError(text),
    repair: (blob) => Recording.repairToWav(blob),
  });

  const refreshQueue = (() => {
    let running = false;
    let again = false;
    return async () => {
      if (running) { again = true; return; }
      running = true;
      try {
        do {
          again = false;
          [rows, meta] = await Promise.all([queue.list(), queue.meta()]);
          render();
        } while (again);
      } finally {
        running = false;
      }
    };
  })();

  function showError(text) {
    const node = $("record-error");
    node.textContent = text;
    show(node, Boolean(text));
  }

  /* ---- rendering ----------------------------------------------------------------------- */

  const render = throttled(() => {
    const s = MinaLedger.fold(events.values());
    renderPhase(s);
    renderLanguage(s);
    renderRecorder(s);
    renderChunks(s);
    renderProcessing(s);
    if (!s.reveal && revealedId) unreveal();
    renderTranscript(s);
    if (s.reveal && s.reveal.id !== revealedId) reveal(s.reveal);
    else if (s.reveal && s.last.speaker_renamed && s.last.speaker_renamed.id > renamedId) {
      // a speaker was named: read the results again, with the name
      renamedId = s.last.speaker_renamed.id;
      transcriptLoadedFor = 0;
      reveal(s.reveal);
    }
  });

  /* An operator reopened the conversation: back to the live view until the next reveal. */
  function unreveal() {
    revealedId = 0;
    speakerTranscript = null;
    ["summary-card", "actions-card", "analytics-card"].forEach((id) => show($(id), false));
    delete document.body.dataset.revealed;
  }

  function phaseOf(s) {
    if (s.processing && s.processing !== "running") return s.processing;
    if (s.transcription === "transcription_failed") return "failed";
    if (s.processing === "running") return "processing";
    if (s.finished || (meta && meta.finishRequested)) return "transcribing";
    if (recorder) return "recording";
    return rows.length || s.chunks.size ? "open" : "ready to record";
  }

  const LANGUAGES = { en: "English", es: "Spanish", de: "German", fr: "French", it: "Italian", pt: "Portuguese", nl: "Dutch" };

  function renderLanguage(s) {
    const node = $("lang");
    if (!s.language) return;
    node.dataset.language = s.language;
    node.textContent = `${LANGUAGES[s.language] || s.language}${s.languageSure ? "" : "?"}`;
    node.classList.remove("hidden");
  }

  function renderPhase(s) {
    const phase = phaseOf(s);
    const node = $("phase");
    node.textContent = phase;
    node.dataset.state = phase.replace(/ /g, "-");
  }

  function renderRecorder(s) {
    const closed = s.finished || Boolean(meta && meta.finishRequested);
    const rec = $("btn-record");
    rec.textContent = recorder ? "Stop" : recordedBefore ? "Resume recording" : "Start recording";
    rec.classList.toggle("danger", Boolean(recorder));
    rec.disabled = closed;
    $("btn-finish").disabled = closed || (!recorder && !rows.length && !s.chunks.size);
    $("file-input").disabled = closed || Boolean(recorder);
    $("rec-dot").classList.toggle("on", Boolean(recorder));
    if (closed && !recorder) {
      $("rec-note").textContent = meta && meta.finishRequested && !meta.finishSent
        ? "Finishing: the last pieces are being uploaded…"
        : "This conversation is finished.";
    }
  }

  function tileState(index, local, server) {
    if (server && server.server) return server.server;
    if (queue.uploading === index) return "uploading";
    if (!local) return "unknown";
    if (local.state === "pending") return local.attempts ? "retrying" : "saved";
    if (local.state === "uploaded") return "received";
    return local.state; // recording, rejected
  }

  function renderChunks(s) {
    const local = new Map(rows.map((r) => [r.index, r]));
    const indexes = [...new Set([...local.keys(), ...s.chunks.keys()])].sort((a, b) => a - b);
    const grid = clear($("chunk-grid"));
    let waiting = 0;
    let retrying = 0;
    for (const i of indexes) {
      const row = local.get(i);
      const server = s.chunks.get(i);
      const state = tileState(i, row, server);
      if (row && row.state === "pending") waiting += 1;
      if (state === "retrying") retrying += 1;
      const details = [`piece ${i + 1}: ${state}`];
      if (row && row.seconds) details.push(`${row.seconds.toFixed(1)} s`);
      if (row && row.attempts) details.push(`${row.attempts} upload attempt(s)`);
      const error = (server && server.error) || (row && row.error);
      if (error) details.push(error);
      grid.append(el("span", { class: `chunk st-${state}`, title: details.join(" · "), dataset: { index: i, state } }, i + 1));
    }
    const done = indexes.filter((i) => (s.chunks.get(i) || {}).server === "transcribed").length;
    $("chunk-count").textContent = indexes.length ? `${done}/${indexes.length} transcribed` : "";
    const note = [];
    if (waiting) note.push(`${waiting} piece(s) saved in this browser, waiting to upload`);
    if (retrying) note.push(navigator.onLine ? "retrying…" : "offline: will upload when the network is back");
    $("queue-note").textContent = note.join(" · ");
  }

  function renderProcessing(s) {
    const list = clear($("task-list"));
    const anyTask = Object.keys(s.tasks).length > 0;
    for (const name of TASKS) {
      const t = s.tasks[name] || { status: anyTask ? "pending" : "waiting" };
      list.append(el("li", { class: `task st-${t.status}`, dataset: { task: name, state: t.status } },
        el("span", { class: "task-name", text: TASK_LABELS[name] }),
        el("span", { class: "task-status", text: t.status === "done" && t.duration_ms ? `done · ${Mina.ms(t.duration_ms)}` : t.status }),
        t.error ? el("span", { class: "task-error", text: t.error }) : null));
    }
    const total = Math.max(s.expected || 0, s.chunks.size, rows.length);
    const transcribed = [...s.chunks.values()].filter((c) => c.server === "transcribed" || c.server === "failed").length;
    let pct = total ? (70 * transcribed) / total : 0;
    let text = total ? `Transcribed ${transcribed} of ${total} piece(s).` : "Waiting for audio.";
    if (s.processing) {
      pct = 70 + 0.3 * (s.percent || 0);
      text = `Transcription complete. Working on the results: ${s.percent || 0}%.`;
    }
    if (s.reveal) {
      pct = 100;
      const failed = s.reveal.payload.failed_tasks || [];
      text = failed.length ? `Ready, except: ${failed.map((t) => TASK_LABELS[t] || t).join(", ")}.` : "Ready.";
    }
    if (s.failure) {
      pct = 100;
      text = `Processing failed: ${s.failure.payload.reason || (s.failure.payload.failed_tasks || []).join(", ")}`;
    }
    const bar = $("progress-bar");
    bar.style.width = `${Math.round(pct)}%`;
    bar.classList.toggle("failed", Boolean(s.failure));
    $("progress-text").textContent = text;
  }

  function renderTranscript(s) {
    if (speakerTranscript) return; // the diarized transcript replaced the live one
    const node = $("transcript");
    const pieces = [...s.chunks.values()].filter((c) => c.server === "transcribed" || c.server === "failed")
      .sort((a, b) => a.index - b.index);
    if (!pieces.length) return;
    clear(node);
    for (const c of pieces) {
      node.append(c.server === "failed"
        ? el("p", { class: "seg failed", dataset: { index: c.index } }, `[piece ${c.index + 1} could not be transcribed: ${c.error || "error"}]`)
        : el("p", { class: "seg", dataset: { index: c.index } }, el("span", { class: "seg-time", text: `#${c.index + 1}` }), c.text || "…"));
    }
    $("transcript-state").textContent = s.transcription ? "complete" : "live";
  }

  /* ---- the reveal ---------------------------------------------------------------------- */

  function unwrap(data, key) {
    for (const candidate of [data, data && data.result, data && data[key]]) {
      if (candidate && typeof candidate === "object" && key in candidate) return candidate;
    }
    return null;
  }

  async function result(name, key) {
    const r = await api(`/api/conversations/${cid}/${name}`, { token });
    const found = r.ok ? unwrap(r.data, key) : null;
    if (found) return found;
    const ready = MinaLedger.fold(events.values()).last[`${name}_ready`]; // the ledger carries the result too
    return ready ? unwrap(ready.payload.result, key) : null;
  }

  async function reveal(ev) {
    revealedId = ev.id;
    const [summary, tasks, analytics] = await Promise.all([
      result("summary", "key_points"), result("tasks", "items"), result("analytics", "speakers"),
    ]);
    const names = (analytics && analytics.speakers.map((s) => s.speaker)) || [];
    if (transcriptLoadedFor !== ev.id) {
      const t = await api(`/api/conversations/${cid}/transcript`, { token });
      if (t.ok && t.data.segments.some((seg) => seg.speaker)) {
        transcriptLoadedFor = ev.id;
        speakerTranscript = t.data.segments;
        MinaResults.transcript($("transcript"), speakerTranscript, names);
        $("transcript-state").textContent = "with speakers";
      }
    }
    if (summary) {
      MinaResults.summary({
        title: $("summary-title"), text: $("summary-text"), keyPoints: $("key-points"),
        decisions: $("decisions"), questions: $("open-questions"),
      }, summary);
    }
    show($("summary-card"), Boolean(summary));
    if (tasks) MinaResults.actionItems($("action-items"), tasks);
    show($("actions-card"), Boolean(tasks));
    show($("analytics-card"), Boolean(analytics));
    if (analytics) {
      MinaCharts.render({
        shareCanvas: $("chart-share"), timelineCanvas: $("chart-timeline"), tableNode: $("speaker-table"),
      }, analytics);
    }
    document.body.dataset.revealed = "true";
  }

  /* ---- actions ------------------------------------------------------------------------- */

  async function toggleRecording() {
    showError("");
    if (recorder) {
      const r = recorder;
      recorder = null;
      recordedBefore += r.elapsed();
      await r.stop();
      render();
      return;
    }
    if (!navigator.mediaDevices || Recording.pickType() === null) {
      showError("This browser cannot record audio. Upload a recording instead.");
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
    } catch (err) {
      showError(`The microphone is not available: ${err.message || err.name}`);
      return;
    }
    recorder = new Recording.SliceRecorder({ stream, sliceSeconds, queue });
    await recorder.start();
    render();
  }

  async function finish() {
    showError("");
    $("btn-finish").disabled = true;
    if (recorder) {
      const r = recorder;
      recorder = null;
      recordedBefore += r.elapsed();
      await r.stop();
    }
    await queue.requestFinish();
  }

  async function pickFile(event) {
    const file = event.target.files[0];
    event.target.value = "";
    if (!file) return;
    showError("");
    const seconds = await Recording.probeSeconds(file);
    const known = isFinite(seconds);
    const fits = file.size <= maxBytes && (!known || seconds <= maxSeconds);
    // A recording longer than one slice is handled like a recorded meeting: cut here into
    // slice-long pieces that are transcribed in parallel, as the recorder's slices are.
    const oneSlice = known && seconds <= sliceSeconds + SLICE_SLACK;
    try {
      let pieces = null;
      if (!oneSlice) {
        $("rec-note").textContent = "Cutting the recording into pieces…";
        try {
          pieces = await Recording.cutToWav(file, Math.min(sliceSeconds, maxSeconds));
        } catch (err) {
          if (!fits) throw err;  // the browser cannot decode it: the server may, whole
        }
      }
      if (pieces === null) {
        await queue.add(file, file.name, known ? seconds : null);
      } else {
        for (const piece of pieces) {
          if (piece.blob.size > maxBytes) throw new Error("a piece is still larger than the upload limit");
          await queue.add(piece.blob, null, piece.seconds);
        }
        $("rec-note").textContent = `Uploading the recording in ${pieces.length} pieces.`;
      }
    } catch (err) {
      showError(`This file cannot be uploaded: ${err.message || err}`);
      return;
    }
    await queue.requestFinish();
  }

  function tick() {
    const seconds = recordedBefore + (recorder ? recorder.elapsed() : 0);
    $("rec-time").textContent = clock(seconds);
  }

  /* ---- start --------------------------------------------------------------------------- */

  async function start() {
    if (!token) {
      showError("This link has no token; open the link you were given.");
      return;
    }
    $("btn-record").addEventListener("click", toggleRecording);
    $("btn-finish").addEventListener("click", finish);
    $("file-input").addEventListener("change", pickFile);
    window.addEventListener("beforeunload", (e) => {
      // Nothing saved is lost on close (the next visit uploads it), but recording stops.
      if (recorder || rows.some((r) => r.state === "pending")) e.preventDefault();
    });
    window.addEventListener("online", render);
    window.addEventListener("offline", render);
    setInterval(tick, 500);

    await queue.recoverOrphans();
    const status = await api(`/api/conversations/${cid}`, { token });
    if (status.ok) await queue.atLeast(status.data.chunks.total);
    await refreshQueue();
    queue.pump();

    const conn = $("conn");
    const feed = new Mina.EventFeed({
      join: { conversation_id: cid, token },
      replayUrl: (after) => `/api/conversations/${cid}/events?after=${after}&limit=500`,
      onEvent: (ev) => {
        events.set(ev.id, ev);
        render();
      },
      onState: (state) => {
        conn.dataset.state = state;
        conn.textContent = { live: "live", polling: "polling", offline: "offline", refused: "not live" }[state] || state;
      },
    });
    window.minaFeed = feed; // for the browser tests and for debugging
    feed.start();
  }

  start();
})();
