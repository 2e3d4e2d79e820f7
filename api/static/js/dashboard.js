/* The operator dashboard: live list, filters, a detail view and the repair buttons.
 *
 * Data: the operator JSON API (docs/operator-api.md), authorized by the HTTP-only session
 * cookie. Live: Socket.IO room `operators` (`dashboard_refresh` names the conversations that
 * changed); while the socket is down the page polls instead. */
"use strict";

(() => {
  const { el, clear, show, clock, span, time, ms, api } = Mina;
  const $ = (id) => document.getElementById(id);
  const TASKS = ["merge", "diarize", "analytics", "refinement", "tasks", "summary"];
  const PAGE = 50;

  let list = [];
  let total = 0;
  let nextCursor = null;
  let fetchedAt = Date.now();
  let selected = null;
  let detail = null;
  let resultsFor = null;
  let tab = "results";

  /* ---- list and stats ------------------------------------------------------------------ */

  function query(cursor) {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if ($("f-status").value) q.set("status", $("f-status").value);
    if ($("f-processing").value) q.set("processing_status", $("f-processing").value);
    if ($("f-stuck").checked) q.set("stuck", "true");
    if ($("f-failed").checked) q.set("failed", "true");
    if (cursor) q.set("cursor", cursor);
    return `/api/operator/conversations?${q}`;
  }

  async function loadList() {
    const r = await api(query(null));
    if (r.status === 401 || r.status === 403) return signedOut();
    if (!r.ok) return false;
    // Keep the pages already loaded ("Load more") as long as the first page has them.
    list = r.data.conversations;
    total = r.data.total;
    nextCursor = r.data.next_cursor;
    fetchedAt = Date.now();
    renderList();
    return true;
  }

  async function loadMore() {
    if (!nextCursor) return;
    const r = await api(query(nextCursor));
    if (!r.ok) return;
    const known = new Set(list.map((c) => c.id));
    list = list.concat(r.data.conversations.filter((c) => !known.has(c.id)));
    nextCursor = r.data.next_cursor;
    renderList();
  }

  async function loadStats() {
    const r = await api("/api/operator/stats");
    if (r.ok) renderStats(r.data);
  }

  function signedOut() {
    location.href = `/login?next=${encodeURIComponent(location.pathname + location.hash)}`;
    return false;
  }

  function renderStats(s) {
    const c = s.conversations || {};
    const p = c.processing_status || {};
    const st = c.status || {};
    const t = s.timings || {};
    const chunkT = t.chunk_transcription_seconds || {};
    const reveal = t.finish_to_reveal_seconds || {};
    const queued = Object.values(s.queues || {}).reduce((n, q) => n + ((q && q.ready) || 0) + ((q && q.delayed) || 0), 0);
    const fmt = (v) => (v === null || v === undefined ? "–" : `${Number(v).toFixed(1)} s`);
    const items = [
      ["conversations", c.total || 0],
      ["recording", st.recording || 0],
      ["processing", p.running || 0],
      ["ready", p.ready || 0],
      ["partial", p.partial || 0],
      ["failed", (p.failed || 0) + (st.transcription_failed || 0)],
      ["stuck", c.stuck || 0],
      ["chunk p50 / p95", `${fmt(chunkT.p50)} / ${fmt(chunkT.p95)}`],
      ["finish → reveal p50", fmt(reveal.p50)],
      ["queued", s.queues ? queued : "–"],
    ];
    const node = clear($("stats"));
    for (const [label, value] of items) node.append(el("div", { class: "stat", dataset: { stat: label } }, el("b", { text: value }), el("span", { text: label })));
  }

  function matchesSearch(c) {
    const needle = $("f-search").value.trim().toLowerCase();
    return !needle || (c.title || "").toLowerCase().includes(needle) || c.id.startsWith(needle);
  }

  function failedMark(c) {
    return (c.chunks && c.chunks.failed) || (c.failed_tasks && c.failed_tasks.length)
      || c.status === "transcription_failed" || c.processing_status === "failed";
  }

  function renderList() {
    const rows = clear($("conv-rows"));
    const shown = list.filter(matchesSearch);
    const elapsed = (Date.now() - fetchedAt) / 1000;
    for (const c of shown) {
      const chunks = c.chunks || {};
      const done = chunks.transcribed || 0;
      const bar = el("span", { class: "minibar" }, el("span"));
      bar.firstChild.style.width = `${chunks.total ? Math.round((100 * done) / chunks.total) : 0}%`;
      const tr = el("tr", {
        class: `selectable${c.id === selected ? " selected" : ""}`,
        dataset: { id: c.id, status: c.status, processing: c.processing_status, stuck: String(Boolean(c.stuck)) },
        onclick: () => select(c.id),
      },
      el("td", {},
        el("div", {}, c.title || el("span", { class: "muted", text: "untitled" }),
          c.stuck ? el("span", { class: "mark stuck", text: "stuck" }) : null,
          failedMark(c) ? el("span", { class: "mark failed", text: "failed" }) : null),
        el("div", { class: "muted small", text: c.id.slice(0, 12) })),
      el("td", {}, el("span", { class: "pill light", dataset: { state: c.status }, text: c.status })),
      el("td", {}, bar, `${done}/${chunks.total || 0}`,
        chunks.failed ? el("span", { class: "mark failed", text: `${chunks.failed} failed` }) : null),
      el("td", {}, el("span", { class: "pill", dataset: { state: c.processing_status }, text: c.processing_status }),
        c.processing_status === "running" ? el("span", { class: "muted small", text: ` ${c.progress}%` }) : null,
        (c.failed_tasks || []).length ? el("div", { class: "err", text: c.failed_tasks.join(", ") }) : null),
      el("td", { class: "num", text: span(c.age_seconds + elapsed) }),
      el("td", { class: "num", text: c.idle_seconds === null || c.idle_seconds === undefined ? "–" : span(c.idle_seconds + elapsed) }));
      rows.append(tr);
    }
    if (!shown.length) rows.append(el("tr", {}, el("td", { colspan: 6, class: "empty", text: list.length ? "No conversation matches." : "No conversations yet." })));
    $("list-count").textContent = `${shown.length} of ${total}`;
    $("more").hidden = !nextCursor;
  }

  /* ---- detail -------------------------------------------------------------------------- */

  function select(id) {
    if (location.hash !== `#c=${id}`) history.replaceState(null, "", `#c=${id}`);
    selected = id;
    detail = null;
    resultsFor = null;
    message("");
    renderList();
    loadDetail();
    // One column (narrower screens): the detail is under the list, so bring it into view.
    const grid = document.querySelector(".dash");
    if (grid && getComputedStyle(grid).gridTemplateColumns.split(" ").length === 1) {
      $("detail").scrollIntoView({ block: "start" });
    }
  }

  async function loadDetail() {
    if (!selected) return;
    const id = selected;
    const r = await api(`/api/operator/conversations/${id}`);
    if (id !== selected) return;
    if (!r.ok) {
      message(r.status === 404 ? "That conversation no longer exists." : `Could not load: ${r.error}`, true);
      return;
    }
    detail = r.data;
    renderDetail();
    const key = JSON.stringify([detail.conversation.revealed_at, detail.conversation.reveal_count, detail.results]);
    if (key !== resultsFor) {
      resultsFor = key;
      loadResults(id, detail.results || {});
    }
  }

  function renderDetail() {
    const d = detail;
    const c = d.conversation;
    show($("detail-empty"), false);
    show($("detail-body"), true);
    $("detail").dataset.id = c.id;
    $("detail").dataset.processing = c.processing_status;
    $("d-title").textContent = c.title || "Untitled conversation";
    $("d-id").textContent = c.id;
    const kv = clear($("d-kv"));
    const pairs = [
      ["transcription", c.status], ["processing", `${c.processing_status} · ${c.progress}%`],
      ["chunks", `${c.chunks.transcribed || 0}/${c.chunks.total} transcribed${c.expected_chunks !== null ? `, ${c.expected_chunks} expected` : ""}`],
      ["duration", clock(c.duration)], ["language", c.language || "detecting…"],
      ["created", time(c.created_at)], ["finished", time(c.finished_at)],
      ["transcribed", time(c.transcribed_at)], ["revealed", time(c.revealed_at)],
    ];
    if (c.error) pairs.push(["error", c.error]);
    for (const [k, v] of pairs) kv.append(el("div", {}, el("dt", { text: k }), el("dd", { text: v })));

    const failedChunks = d.chunks.filter((x) => x.status === "failed").length;
    const failedTasks = d.tasks.filter((t) => t.status === "failed").length;
    const running = c.processing_status === "running";
    $("btn-retry-chunks").disabled = !failedChunks || running;
    $("btn-retry-chunks").textContent = failedChunks ? `Retry ${failedChunks} failed chunk(s)` : "Retry failed chunks";
    $("btn-retry-tasks").disabled = !failedTasks || running;
    $("btn-retry-tasks").textContent = failedTasks ? `Retry ${failedTasks} failed task(s)` : "Retry failed tasks";
    $("btn-finish").disabled = c.is_finished;

    renderTasks(d.tasks);
    renderChunks(d.chunks);
    renderTimeline(d.events);
  }

  function renderTasks(tasks) {
    const table = clear($("d-tasks"));
    table.append(el("thead", {}, el("tr", {}, ["Task", "Status", "Attempts", "Duration", "Finished", "Error"].map((h) => el("th", { text: h })))));
    const body = el("tbody");
    const byName = Object.fromEntries(tasks.map((t) => [t.name, t]));
    for (const name of TASKS) {
      const t = byName[name];
      body.append(el("tr", { dataset: { task: name, state: t ? t.status : "none" } },
        el("td", { text: name }),
        el("td", {}, el("span", { class: "pill", dataset: { state: t ? t.status : "pending" }, text: t ? t.status : "not started" })),
        el("td", { class: "num", text: t ? t.attempts : "–" }),
        el("td", { class: "num", text: t ? ms(t.duration_ms) : "–" }),
        el("td", { text: t ? time(t.finished_at) : "–" }),
        el("td", { class: "err", text: (t && t.error) || "" })));
    }
    table.append(body);
  }

  function renderChunks(chunks) {
    const table = clear($("d-chunks"));
    table.append(el("thead", {}, el("tr", {}, ["#", "Status", "Attempts", "Length", "Size", "Queued", "Transcribe", "Error"].map((h) => el("th", { text: h })))));
    const body = el("tbody");
    for (const ch of chunks) {
      body.append(el("tr", { dataset: { index: ch.index, state: ch.status } },
        el("td", { class: "num", text: ch.index }),
        el("td", {}, el("span", { class: `chunk st-${ch.status}`, text: ch.status })),
        el("td", { class: "num", text: ch.attempts }),
        el("td", { class: "num", text: ch.duration ? `${ch.duration.toFixed(1)} s` : "–" }),
        el("td", { class: "num", text: ch.size ? `${Math.round(ch.size / 1024)} KB` : "–" }),
        el("td", { text: time(ch.queued_at || ch.created_at) }),
        el("td", { class: "num", text: ch.transcribe_seconds ? `${ch.transcribe_seconds.toFixed(2)} s` : "–" }),
        el("td", { class: "err", text: ch.error ? `${ch.error_kind ? `[${ch.error_kind}] ` : ""}${ch.error}` : "" })));
    }
    if (!chunks.length) body.append(el("tr", {}, el("td", { colspan: 8, class: "empty", text: "No chunks uploaded." })));
    table.append(body);
  }

  function renderTimeline(events) {
    const list = clear($("d-timeline"));
    for (const ev of [...events].reverse()) {
      const kind = /failed/.test(ev.type) ? "bad" : /ready|reveal|transcribed|complete/.test(ev.type) ? "good" : "";
      list.append(el("li", { dataset: { type: ev.type } },
        el("span", { class: "muted", text: time(ev.created_at) }),
        el("span", { class: "muted small", text: `#${ev.id}` }),
        el("span", {}, el("span", { class: `ev-type ${kind}`, text: ev.type }), " ",
          el("span", { class: "muted small", text: summarize(ev.payload || {}) }))));
    }
  }

  function summarize(p) {
    const parts = [];
    if (p.index !== undefined) parts.push(`chunk ${p.index}`);
    if (p.status) parts.push(p.status);
    if (p.percent !== undefined) parts.push(`${p.percent}%`);
    if (p.duration_ms !== undefined) parts.push(ms(p.duration_ms));
    if (p.failed_tasks && p.failed_tasks.length) parts.push(`failed: ${p.failed_tasks.join(", ")}`);
    if (p.error) parts.push(p.error);
    if (p.reason) parts.push(p.reason);
    if (p.expected_chunks !== undefined) parts.push(`${p.expected_chunks} expected`);
    return parts.join(" · ");
  }

  async function loadResults(id, available) {
    const get = async (name) => {
      if (!available[name]) return null;
      const r = await api(`/api/conversations/${id}/${name}`);
      return r.ok ? r.data : null;
    };
    const [analytics, summary, tasks, transcript, speakers] = await Promise.all([
      get("analytics"), get("summary"), get("tasks"),
      api(`/api/conversations/${id}/transcript`).then((r) => (r.ok ? r.data : null)),
      api(`/api/conversations/${id}/speakers`).then((r) => (r.ok ? r.data : null)),
    ]);
    if (id !== selected) return;
    show($("r-none"), !analytics && !summary && !tasks);
    show($("r-analytics"), Boolean(analytics));
    if (analytics) {
      MinaCharts.render({ shareCanvas: $("d-chart-share"), timelineCanvas: $("d-chart-timeline"), tableNode: $("d-speakers") }, analytics);
    }
    show($("r-summary"), Boolean(summary));
    if (summary) {
      MinaResults.summary({
        title: $("r-summary-title"), text: $("r-summary-text"), keyPoints: $("r-key-points"),
        decisions: $("r-decisions"), questions: $("r-questions"),
      }, summary);
    }
    show($("r-tasks"), Boolean(tasks));
    if (tasks) MinaResults.actionItems($("r-items"), tasks, { confidence: true });
    show($("r-names"), Boolean(speakers && speakers.speakers.length));
    if (speakers) renderSpeakers(id, speakers.speakers, available);
    const names = analytics ? analytics.speakers.map((s) => s.speaker) : [];
    MinaResults.transcript($("d-transcript"), (transcript && transcript.segments) || [], names);
  }

  /* Speakers and their names; a rename goes to the API and the results are read again. */
  function renderSpeakers(id, speakers, available) {
    const list = clear($("r-speakers"));
    for (const sp of speakers) {
      const input = el("input", { type: "text", value: sp.shown, maxlength: "60", "aria-label": `Name of ${sp.speaker}` });
      const sure = sp.source === "user" ? "given" : sp.confidence != null ? `learned, ${Math.round(100 * sp.confidence)} % sure` : "no name yet";
      const save = el("button", { type: "submit", class: "btn", text: "Rename" });
      const form = el("form", { class: "speaker-name", "data-speaker": sp.speaker },
        el("span", { class: "tag", text: sp.speaker }), input, save, el("span", { class: "muted", text: sure }));
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        save.disabled = true;
        const r = await api(`/api/conversations/${id}/speakers/${encodeURIComponent(sp.speaker)}`,
          { method: "PUT", body: { name: input.value } });
        if (r.ok) message(`${r.data.previous} is now ${r.data.name}.`);
        else message(r.error, true);
        save.disabled = false;
        await loadResults(id, available);
      });
      list.appendChild(el("li", {}, form));
    }
  }

  /* ---- actions ------------------------------------------------------------------------- */

  let messageTimer = null;

  function message(text, bad) {
    const node = $("d-message");
    node.textContent = text;
    node.className = bad ? "alert" : "notice";
    show(node, Boolean(text));
    clearTimeout(messageTimer);
    if (text && !bad) messageTimer = setTimeout(() => show(node, false), 8000);
  }

  async function act(button, path, body, describe) {
    if (!selected) return;
    button.disabled = true;
    const r = await api(`/api/operator/conversations/${selected}/${path}`, { method: "POST", body });
    if (r.ok) message(describe(r.data));
    else message(r.error, true);
    await Promise.all([loadDetail(), loadList()]);
  }

  function wire() {
    $("btn-retry-chunks").addEventListener("click", (e) => act(e.target, "retry", { what: "chunks" },
      (d) => `Retrying chunk(s) ${d.chunks.join(", ")}${d.reopened ? "; the conversation reopens and will be processed again" : ""}.`));
    $("btn-retry-tasks").addEventListener("click", (e) => act(e.target, "retry", { what: "tasks" },
      (d) => `Retrying ${d.tasks.join(", ")}.`));
    $("btn-finish").addEventListener("click", (e) => {
      if (!confirm("Finish this conversation now? No more chunks will be accepted.")) return;
      act(e.target, "finish", {}, (d) => `Finished with ${d.expected_chunks} chunk(s) expected.`);
    });
    $("more").addEventListener("click", loadMore);
    $("filters").addEventListener("submit", (e) => e.preventDefault());
    $("f-search").addEventListener("input", renderList);
    for (const id of ["f-status", "f-processing", "f-stuck", "f-failed"]) $(id).addEventListener("change", loadList);
    for (const button of document.querySelectorAll(".tabs button")) {
      button.addEventListener("click", () => {
        tab = button.dataset.tab;
        document.querySelectorAll(".tabs button").forEach((b) => b.setAttribute("aria-selected", String(b === button)));
        document.querySelectorAll("[data-panel]").forEach((p) => show(p, p.dataset.panel === tab));
      });
    }
  }

  /* ---- live ---------------------------------------------------------------------------- */

  let refreshTimer = null;
  let changed = new Set();

  function onRefresh(data) {
    (data && data.conversation_ids || []).forEach((id) => changed.add(id));
    if (refreshTimer) return;
    refreshTimer = setTimeout(async () => {
      refreshTimer = null;
      const ids = changed;
      changed = new Set();
      await Promise.all([loadList(), loadStats(), selected && ids.has(selected) ? loadDetail() : null]);
    }, 300);
  }

  function start() {
    wire();
    window.minaSelect = select; // search hits open their conversation (js/search.js)
    const fromHash = /^#c=([0-9a-f]+)(?:&t=[0-9.]+)?$/.exec(location.hash); // t: js/search.js
    if (fromHash) select(fromHash[1]);
    setInterval(renderList, 10000); // ages tick
    const conn = $("conn");
    const feed = new Mina.EventFeed({
      join: { room: "operators" }, // the server reads the operator token from the session cookie
      onSignal: (name, data) => { if (name === "dashboard_refresh") onRefresh(data); },
      onEvent: () => {},
      onPoll: async () => {
        const ok = await loadList();
        await Promise.all([loadStats(), feed.live ? null : loadDetail()]); // live: refreshes do it
        return ok;
      },
      pollMs: 3000,
      livePollMs: 5000, // creating a conversation emits no event: new ones show up by polling
      onState: (state) => {
        conn.dataset.state = state;
        conn.textContent = { live: "live", polling: "polling", offline: "offline", refused: "not live" }[state] || state;
      },
    });
    window.minaFeed = feed;
    feed.start();
  }

  start();
})();
