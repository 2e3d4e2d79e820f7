/* Mina pages: small helpers shared by the participant page and the dashboard.
 *
 * EventFeed keeps a page in step with the conversation's event ledger. Live events come over
 * Socket.IO (`join` with the last ledger id seen, the server replays what was missed); the HTTP
 * ledger (`GET /api/conversations/{id}/events?after=N`) is the fallback while the socket is down
 * or refused, and a slow safety net while it is up. Every event is accepted once (dedupe by id),
 * in whatever order it arrives: pages fold the whole set sorted by id, so order never matters.
 */
"use strict";

const Mina = (() => {
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function show(node, visible) {
    node.classList.toggle("hidden", !visible);
  }

  function clock(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
    const s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const pad = (n) => String(n).padStart(2, "0");
    return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`;
  }

  /* A short human duration: 42s, 5m, 2h 3m, 4d. */
  function span(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
    const s = Math.max(0, seconds);
    if (s < 60) return `${Math.floor(s)}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
    return `${Math.floor(s / 86400)}d`;
  }

  function time(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  }

  function ms(value) {
    if (value === null || value === undefined) return "–";
    return value < 1000 ? `${value} ms` : `${(value / 1000).toFixed(1)} s`;
  }

  function percent(share) {
    return `${Math.round((share || 0) * 100)}%`;
  }

  /* fetch JSON; never throws for HTTP errors: `{ok, status, data, error}` */
  async function api(path, { method = "GET", token = null, body = undefined, form = undefined } = {}) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    let payload;
    if (form) payload = form;
    else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
    } catch (err) {
      return { ok: false, status: 0, data: null, error: "network error" };
    }
    let data = null;
    const type = resp.headers.get("Content-Type") || "";
    if (type.includes("json")) data = await resp.json().catch(() => null);
    const error = resp.ok ? null : (data && data.error && data.error.message) || `HTTP ${resp.status}`;
    return { ok: resp.ok, status: resp.status, data, error };
  }

  /* Coalesce many calls into one per animation frame. */
  function throttled(fn) {
    let queued = false;
    return () => {
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => {
        queued = false;
        fn();
      });
    };
  }

  class EventFeed {
    /**
     * @param {object} opts
     *   join: the `join` payload without `after` ({conversation_id, token} or {room, token})
     *   replayUrl: (after) => URL of the HTTP ledger, or null when there is none (operators)
     *   onEvent(ev): a ledger event, once per id, in arrival order
     *   onSignal(name, data): a non-ledger event (dashboard_refresh)
     *   onState(state): "live" | "polling" | "offline" | "refused"
     *   onPoll(): replaces the HTTP ledger catch-up (the dashboard reloads its list instead)
     *   pollMs, livePollMs: catch-up interval without / with a live socket (2 s, 20 s)
     */
    constructor(opts) {
      this.opts = opts;
      this.seen = new Set();
      this.lastId = 0;
      this.httpAfter = 0;
      this.live = false;
      this.refused = false;
      this.socket = null;
      this.timer = null;
      this.polling = false;
      this.state = null;
    }

    start() {
      if (window.io) this._connect();
      this._schedule(0);
      window.addEventListener("online", () => this._schedule(0));
    }

    accept(ev) {
      if (!ev || typeof ev.id !== "number" || this.seen.has(ev.id)) return false;
      this.seen.add(ev.id);
      if (ev.id > this.lastId) this.lastId = ev.id;
      this.opts.onEvent(ev);
      return true;
    }

    _connect() {
      const socket = window.io({ reconnectionDelayMax: 10000 });
      this.socket = socket;
      socket.on("connect", () => {
        this.refused = false;
        const payload = Object.assign({}, this.opts.join, { after: this.lastId });
        socket.emit("join", payload, (answer) => {
          if (answer && (answer.error || answer.ok === false)) this._refuse(answer);
          else if (answer) this._confirmLive();
        });
        this._setState(this.live ? "live" : "polling");
      });
      socket.on("joined", (info) => {
        // The replay before `joined` came in order on this socket: the HTTP cursor may skip it.
        if (info && typeof info.last_id === "number") {
          this.httpAfter = Math.max(this.httpAfter, Math.min(info.last_id, this.lastId));
        }
        this._confirmLive();
        this._schedule(0); // one catch-up right after (re)joining
      });
      socket.on("join_error", (answer) => this._refuse(answer));
      socket.on("disconnect", () => {
        this.live = false;
        this._setState(navigator.onLine ? "polling" : "offline");
        this._schedule(0);
      });
      socket.onAny((name, data) => {
        if (name === "join_error" || name === "joined") return;
        if (data && typeof data.id === "number" && data.type) {
          this._confirmLive();
          this.accept(data);
        } else if (this.opts.onSignal) {
          if (name === "dashboard_refresh") this._confirmLive();
          this.opts.onSignal(name, data);
        }
      });
    }

    _confirmLive() {
      if (this.refused) return;
      this.live = true;
      this._setState("live");
    }

    _refuse(answer) {
      this.refused = true;
      this.live = false;
      this._setState("refused");
      console.warn("join refused", answer);
    }

    _setState(state) {
      if (state === this.state) return;
      this.state = state;
      if (this.opts.onState) this.opts.onState(state);
    }

    /* HTTP catch-up: fast while the socket is not confirmed live, slow while it is. */
    _schedule(delay) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.poll(), delay);
    }

    async poll() {
      if (this.polling) return;
      this.polling = true;
      let ok = true;
      try {
        ok = await this.catchUp();
      } finally {
        this.polling = false;
      }
      if (!this.live) this._setState(ok ? (this.refused ? "refused" : "polling") : "offline");
      const fast = this.opts.pollMs || 2000;
      this._schedule(this.live ? this.opts.livePollMs || 20000 : ok ? fast : Math.max(fast, 5000));
    }

    async catchUp() {
      if (this.opts.onPoll) return this.opts.onPoll();
      const url = this.opts.replayUrl;
      if (!url) return true;
      /* Its own cursor, not lastId: a live event may have jumped ahead of one still in flight.
       * Within a conversation the ledger allocates ids in commit order, so `id > cursor`
       * never skips an event that commits later (docs/realtime.md). */
      for (let page = 0; page < 50; page++) {
        const r = await api(url(this.httpAfter), { token: this.opts.join.token });
        if (!r.ok) return false;
        const events = (r.data && r.data.events) || [];
        events.forEach((ev) => {
          this.accept(ev);
          this.httpAfter = Math.max(this.httpAfter, ev.id);
        });
        if (events.length < 500) break;
      }
      return true;
    }
  }

  return { el, clear, show, clock, span, time, ms, percent, api, throttled, EventFeed };
})();
