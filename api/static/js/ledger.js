/* The participant page's view of a conversation, folded from its ledger events.
 *
 * `fold(events)` sorts the events by id and replays them into one state (chunks by index, tasks,
 * phases, the latest reveal), so the same set of events gives the same state whatever order
 * and however many times they arrived (docs/realtime.md). */
"use strict";

const MinaLedger = (() => {
  const TASKS = ["merge", "diarize", "analytics", "refinement", "tasks", "summary"];

  function fold(events) {
    const sorted = [...events].sort((a, b) => a.id - b.id);
    const s = {
      chunks: new Map(), tasks: {}, finished: false, expected: null, transcription: null,
      processing: null, percent: null, reveal: null, failure: null, last: {},
      language: null, languageSure: true,
    };
    const chunk = (i) => {
      if (!s.chunks.has(i)) s.chunks.set(i, { index: i });
      return s.chunks.get(i);
    };
    for (const ev of sorted) {
      const p = ev.payload || {};
      s.last[ev.type] = ev;
      const [task, phase] = splitTask(ev.type);
      if (task) {
        s.tasks[task] = Object.assign(s.tasks[task] || {}, {
          status: { started: "running", ready: "done", failed: "failed" }[phase],
          error: phase === "failed" ? p.error : null,
          duration_ms: phase === "ready" ? p.duration_ms : (s.tasks[task] || {}).duration_ms,
        });
        continue;
      }
      switch (ev.type) {
        case "chunk_received":
          Object.assign(chunk(p.index), { server: "received", duration: p.duration });
          break;
        case "chunk_transcribed":
          Object.assign(chunk(p.index), { server: "transcribed", text: p.text, error: null });
          break;
        case "chunk_failed":
          Object.assign(chunk(p.index), { server: "failed", error: p.error });
          break;
        case "chunks_retried":
          (p.chunks || []).forEach((c) => Object.assign(chunk(c.index), { server: "received", error: null }));
          if (p.reopened) {
            // Transcription and post-processing run again; a new reveal will follow.
            Object.assign(s, { transcription: null, processing: null, percent: null, reveal: null, failure: null, tasks: {} });
          }
          break;
        case "conversation_created":
          s.language = p.language || s.language;
          break;
        case "language_detected":  // auto: detected per chunk until the model is sure
          s.language = p.language;
          s.languageSure = Boolean(p.sure);
          break;
        case "conversation_finished":
          s.finished = true;
          s.expected = p.expected_chunks;
          break;
        case "transcription_complete":
          s.finished = true;
          s.transcription = p.status;
          break;
        case "post_transcription_started":
          s.processing = "running";
          (p.tasks || TASKS).forEach((t) => (s.tasks[t] = { status: "pending" }));
          break;
        case "post_transcription_progress":
          s.percent = p.percent;
          break;
        case "post_transcription_reveal":
          s.reveal = ev;
          s.failure = null;
          s.processing = p.status;
          break;
        case "post_transcription_failed":
          s.failure = ev;
          s.processing = "failed";
          break;
      }
    }
    return s;
  }

  function splitTask(type) {
    const m = /^(merge|diarize|analytics|refinement|tasks|summary)_(started|ready|failed)$/.exec(type);
    return m ? [m[1], m[2]] : [null, null];
  }

  return { fold, TASKS };
})();
