/* The participant's upload queue, kept in IndexedDB so that nothing already recorded is lost.
 *
 * Every recorded slice gets its index when it starts and is written to IndexedDB second by
 * second while it records (store `parts`), then sealed into one Blob (store `chunks`, state
 * `pending`). One uploader per page sends pending chunks in index order and retries network
 * errors, 5xx, 408 and 429 with exponential backoff (1 s doubling to 30 s, with jitter); the
 * browser's `online` event retries at once. A chunk leaves the store's blob only once the server
 * answered 200/202 (it keeps a small record for the page). A reload finds everything where it
 * was: slices a dead tab was still recording are sealed from their parts and uploaded, and a
 * finish asked for before the reload is sent once the last chunk is up.
 */
"use strict";

const UploadQueue = (() => {
  const DB_NAME = "mina-uploads";
  const RETRY_STATUSES = new Set([0, 408, 425, 429, 500, 502, 503, 504]);
  let dbPromise = null;

  function request(req) {
    return new Promise((resolve, reject) => {
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }

  function openDb() {
    if (dbPromise) return dbPromise;
    dbPromise = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, 1);
      req.onupgradeneeded = () => {
        const db = req.result;
        db.createObjectStore("chunks", { keyPath: "key" }).createIndex("cid", "cid");
        db.createObjectStore("parts", { autoIncrement: true }).createIndex("key", "key");
        db.createObjectStore("meta", { keyPath: "cid" });
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    return dbPromise;
  }

  /* Run `fn(stores)` in one transaction; resolves with fn's result once it committed. */
  async function transact(names, mode, fn) {
    const db = await openDb();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(names, mode);
      const stores = Object.fromEntries(names.map((n) => [n, tx.objectStore(n)]));
      let result;
      Promise.resolve(fn(stores)).then((r) => (result = r), reject);
      tx.oncomplete = () => resolve(result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error("transaction aborted"));
    });
  }

  function backoff(attempts) {
    const base = Math.min(30000, 1000 * 2 ** Math.max(0, attempts - 1));
    return base * (0.75 + Math.random() * 0.5);
  }

  class Queue {
    constructor({ cid, token, onChange, onNotice, repair }) {
      this.cid = cid;
      this.repair = repair || null; // (blob) => Promise<blob>: for slices a dead tab left
      this.token = token;
      this.onChange = onChange || (() => {});
      this.onNotice = onNotice || (() => {});
      this.uploading = null; // index being sent
      this.busy = false;
      this.timer = null;
      this.stopped = false;
      window.addEventListener("online", () => this.retryNow());
    }

    key(index) {
      return `${this.cid}:${index}`;
    }

    async meta() {
      return transact(["meta"], "readonly", ({ meta }) => request(meta.get(this.cid)));
    }

    async _updateMeta(change) {
      return transact(["meta"], "readwrite", async ({ meta }) => {
        const m = (await request(meta.get(this.cid))) || { cid: this.cid, nextIndex: 0 };
        change(m);
        meta.put(m);
        return m;
      });
    }

    /* Indexes continue after what the server already has (another device, a cleared store). */
    async atLeast(nextIndex) {
      await this._updateMeta((m) => (m.nextIndex = Math.max(m.nextIndex || 0, nextIndex)));
    }

    async list() {
      const rows = await transact(["chunks"], "readonly", ({ chunks }) =>
        request(chunks.index("cid").getAll(this.cid))
      );
      return rows.sort((a, b) => a.index - b.index);
    }

    /* A new slice starts recording: reserve its index. */
    async allocate(extra) {
      const index = await transact(["meta", "chunks"], "readwrite", async ({ meta, chunks }) => {
        const m = (await request(meta.get(this.cid))) || { cid: this.cid, nextIndex: 0 };
        const index = m.nextIndex || 0;
        m.nextIndex = index + 1;
        meta.put(m);
        chunks.put(Object.assign({
          key: this.key(index), cid: this.cid, index, state: "recording", attempts: 0,
          error: null, size: 0, recordedAt: Date.now(),
        }, extra || {}));
        return index;
      });
      this.onChange();
      return index;
    }

    async appendPart(index, blob) {
      if (!blob || !blob.size) return;
      await transact(["parts"], "readwrite", ({ parts }) => {
        parts.add({ key: this.key(index), blob });
      });
    }

    /* The slice ended (or its tab died): its parts become one pending Blob. */
    async seal(index, mime, seconds, repair) {
      const key = this.key(index);
      const fixed = repair ? await this._repaired(key) : null;
      await transact(["parts", "chunks"], "readwrite", async ({ parts, chunks }) => {
        const row = await request(chunks.get(key));
        const pieces = await request(parts.index("key").getAll(key));
        const partKeys = await request(parts.index("key").getAllKeys(key));
        partKeys.forEach((k) => parts.delete(k));
        if (!row || row.state !== "recording") return;
        const type = fixed ? fixed.type : mime || (pieces[0] && pieces[0].blob.type) || "audio/webm";
        const blob = fixed || new Blob(pieces.map((p) => p.blob), { type });
        if (!blob.size) {
          chunks.delete(key); // nothing was recorded; the index stays unused
          return;
        }
        Object.assign(row, { state: "pending", blob, mime: type, size: blob.size, nextAttemptAt: 0 });
        if (seconds) row.seconds = seconds;
        chunks.put(row);
      });
      this.onChange();
      this.pump();
    }

    /* The dead tab's parts, decoded and re-encoded by `this.repair`; null to send them as is. */
    async _repaired(key) {
      if (!this.repair) return null;
      const pieces = await transact(["parts"], "readonly", ({ parts }) => request(parts.index("key").getAll(key)));
      if (!pieces.length) return null;
      try {
        return await this.repair(new Blob(pieces.map((p) => p.blob), { type: pieces[0].blob.type }));
      } catch (err) {
        console.warn(`slice ${key} could not be repaired; sending it as recorded`, err);
        return null;
      }
    }

    /* A whole file (or a piece cut from one) to upload as the next chunk. */
    async add(blob, name, seconds) {
      const index = await this.allocate({ name });
      await transact(["chunks"], "readwrite", async ({ chunks }) => {
        const row = await request(chunks.get(this.key(index)));
        Object.assign(row, {
          state: "pending", blob, mime: blob.type, size: blob.size, seconds: seconds || null,
          nextAttemptAt: 0,
        });
        chunks.put(row);
      });
      this.onChange();
      this.pump();
      return index;
    }

    /* Slices left `recording` by a tab that died: seal them from the parts it saved. */
    async recoverOrphans() {
      const recover = async () => {
        for (const row of await this.list()) {
          if (row.state === "recording") await this.seal(row.index, null, null, true);
        }
      };
      if (navigator.locks) {
        // A live recorder (this or another tab) holds this lock; a dead tab's lock is gone.
        await navigator.locks.request(`mina-rec-${this.cid}`, { ifAvailable: true }, async (lock) => {
          if (lock) await recover();
        });
      } else {
        await recover();
      }
    }

    async requestFinish() {
      await this._updateMeta((m) => (m.finishRequested = true));
      this.onChange();
      this.pump();
    }

    retryNow() {
      transact(["chunks"], "readwrite", async ({ chunks }) => {
        for (const row of await request(chunks.index("cid").getAll(this.cid))) {
          if (row.state === "pending" && row.nextAttemptAt) {
            row.nextAttemptAt = 0;
            chunks.put(row);
          }
        }
      }).then(() => this.pump());
    }

    /* The uploader: one chunk at a time, lowest index first. Safe to call any time. */
    async pump() {
      if (this.stopped) return;
      if (this.busy) {
        this.again = true; // look again when the running pass ends
        return;
      }
      this.busy = true;
      try {
        do {
          this.again = false;
          await this._pass();
        } while (this.again);
      } finally {
        this.busy = false;
      }
    }

    async _pass() {
      clearTimeout(this.timer);
      for (;;) {
        const rows = await this.list();
        const pending = rows.filter((r) => r.state === "pending");
        const due = pending.filter((r) => (r.nextAttemptAt || 0) <= Date.now());
        if (due.length) {
          await this._send(due[0]);
          continue;
        }
        if (pending.length) {
          const wait = Math.min(...pending.map((r) => r.nextAttemptAt)) - Date.now();
          this.timer = setTimeout(() => this.pump(), Math.max(50, wait));
          return;
        }
        if (!rows.some((r) => r.state === "recording")) await this._finishIfAsked();
        return;
      }
    }

    async _send(row) {
      this.uploading = row.index;
      this.onChange();
      const form = new FormData();
      form.append("index", String(row.index));
      const ext = (row.mime || "").includes("ogg") ? "ogg" : (row.mime || "").includes("wav") ? "wav" : "webm";
      form.append("file", row.blob, row.name || `chunk-${String(row.index).padStart(5, "0")}.${ext}`);
      const r = await Mina.api(`/api/conversations/${this.cid}/chunks`, {
        method: "POST", token: this.token, form,
      });
      this.uploading = null;
      const code = r.data && r.data.error && r.data.error.code;
      if (r.ok) {
        await this._put(row, { state: "uploaded", blob: null, error: null, uploadedAt: Date.now() });
      } else if (r.status === 409 && code === "index_taken") {
        await this._reindex(row); // that index holds other audio (another device): take the next
      } else if (RETRY_STATUSES.has(r.status)) {
        const attempts = (row.attempts || 0) + 1;
        await this._put(row, { attempts, error: r.error, nextAttemptAt: Date.now() + backoff(attempts) });
      } else {
        // 400, 401/403 (link revoked), 404, 409 finished, 413, 415: retrying cannot help.
        await this._put(row, { state: "rejected", error: r.error, attempts: (row.attempts || 0) + 1 });
        this.onNotice(`Piece ${row.index + 1} was refused: ${r.error}`);
      }
      this.onChange();
    }

    async _put(row, change) {
      Object.assign(row, change);
      await transact(["chunks"], "readwrite", ({ chunks }) => chunks.put(row));
    }

    async _reindex(row) {
      await transact(["meta", "chunks"], "readwrite", async ({ meta, chunks }) => {
        const m = await request(meta.get(this.cid));
        const index = Math.max(m.nextIndex || 0, row.index + 1);
        m.nextIndex = index + 1;
        meta.put(m);
        chunks.delete(row.key);
        chunks.put(Object.assign({}, row, { key: this.key(index), index, nextAttemptAt: 0 }));
      });
    }

    async _finishIfAsked() {
      const m = await this.meta();
      if (!m || !m.finishRequested || m.finishSent) return;
      const status = await Mina.api(`/api/conversations/${this.cid}`, { token: this.token });
      if (!status.ok) {
        this.timer = setTimeout(() => this.pump(), 3000);
        return;
      }
      const expected = status.data.chunks.total;
      const r = await Mina.api(`/api/conversations/${this.cid}/finish`, {
        method: "POST", token: this.token, body: { expected_chunks: expected },
      });
      const code = r.data && r.data.error && r.data.error.code;
      if (r.ok || code === "already_finished") {
        await this._updateMeta((meta) => (meta.finishSent = true));
        this.onChange();
      } else if (RETRY_STATUSES.has(r.status)) {
        this.timer = setTimeout(() => this.pump(), 3000);
      } else {
        this.onNotice(`Finish was refused: ${r.error}`);
        await this._updateMeta((meta) => (meta.finishSent = true));
      }
    }
  }

  return Queue;
})();
