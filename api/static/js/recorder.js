/* Recording in self-contained slices, and cutting a long file into pieces.
 *
 * SliceRecorder runs one MediaRecorder per slice on the same microphone stream: every slice is a
 * complete file with its own header, so the server can decode each alone. The next slice's
 * recorder starts before the previous one stops, so nothing falls between them. While a slice
 * records, its data is written to the upload queue every second, so a tab that dies mid-slice
 * leaves its audio behind (sealed and uploaded by the next page load).
 */
"use strict";

const Recording = (() => {
  const TYPES = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/mp4"];

  function pickType() {
    if (!window.MediaRecorder) return null;
    return TYPES.find((t) => MediaRecorder.isTypeSupported(t)) || "";
  }

  class SliceRecorder {
    constructor({ stream, sliceSeconds, queue, onSlice }) {
      this.stream = stream;
      this.sliceMs = Math.round(sliceSeconds * 1000);
      this.queue = queue;
      this.onSlice = onSlice || (() => {});
      this.mime = pickType();
      this.current = null;
      this.timer = null;
      this.stopping = false;
      this.startedAt = null;
      this.sealed = [];
      this._releaseLock = null;
    }

    async start() {
      if (navigator.locks) {
        // Held while recording: tells other tabs (and a reload) these slices are alive.
        await new Promise((ready) => {
          navigator.locks.request(`mina-rec-${this.queue.cid}`, () => {
            ready();
            return new Promise((release) => (this._releaseLock = release));
          });
        });
      }
      if (navigator.storage && navigator.storage.persist) navigator.storage.persist();
      this.startedAt = Date.now();
      this._startSlice();
    }

    elapsed() {
      return this.startedAt ? (Date.now() - this.startedAt) / 1000 : 0;
    }

    _startSlice() {
      const options = this.mime ? { mimeType: this.mime, audioBitsPerSecond: 64000 } : {};
      const rec = new MediaRecorder(this.stream, options);
      const slice = { rec, began: Date.now(), index: this.queue.allocate(), writes: Promise.resolve() };
      rec.ondataavailable = (e) => {
        const blob = e.data;
        slice.writes = slice.writes.then(async () => this.queue.appendPart(await slice.index, blob));
      };
      slice.done = new Promise((resolve) => {
        rec.onstop = async () => {
          await slice.writes;
          const index = await slice.index;
          await this.queue.seal(index, rec.mimeType || this.mime, (Date.now() - slice.began) / 1000);
          this.onSlice(index);
          resolve(index);
        };
      });
      rec.start(1000);
      this.current = slice;
      this.sealed.push(slice.done);
      this.timer = setTimeout(() => this._cut(), this.sliceMs);
    }

    _cut() {
      const old = this.current;
      if (!this.stopping) this._startSlice();
      if (old && old.rec.state !== "inactive") old.rec.stop();
    }

    /* Stop recording; resolves once every slice is sealed into the queue. */
    async stop() {
      this.stopping = true;
      clearTimeout(this.timer);
      const slice = this.current;
      if (slice && slice.rec.state !== "inactive") slice.rec.stop();
      await Promise.all(this.sealed);
      this.stream.getTracks().forEach((t) => t.stop());
      if (this._releaseLock) this._releaseLock();
    }
  }

  /* The duration the browser reads from a file's header (NaN when it cannot tell). */
  function probeSeconds(file) {
    return new Promise((resolve) => {
      const audio = document.createElement("audio");
      const url = URL.createObjectURL(file);
      const done = (value) => {
        URL.revokeObjectURL(url);
        resolve(value);
      };
      const timer = setTimeout(() => done(NaN), 4000);
      audio.preload = "metadata";
      audio.onloadedmetadata = () => {
        clearTimeout(timer);
        done(audio.duration);
      };
      audio.onerror = () => {
        clearTimeout(timer);
        done(NaN);
      };
      audio.src = url;
    });
  }

  const RATE = 16000;

  /* Decode any audio the browser can play into 16 kHz mono samples. */
  async function decodeMono(blob) {
    const context = new OfflineAudioContext(1, RATE, RATE);
    const decoded = await context.decodeAudioData(await blob.arrayBuffer());
    const mono = new Float32Array(decoded.length);
    for (let ch = 0; ch < decoded.numberOfChannels; ch++) {
      const data = decoded.getChannelData(ch);
      for (let i = 0; i < data.length; i++) mono[i] += data[i] / decoded.numberOfChannels;
    }
    return mono;
  }

  /* Decode a file at 16 kHz mono and cut it into WAV pieces of `seconds` each. */
  async function cutToWav(file, seconds) {
    const mono = await decodeMono(file);
    const step = Math.round(seconds * RATE);
    const pieces = [];
    for (let start = 0; start < mono.length; start += step) {
      const part = mono.subarray(start, Math.min(mono.length, start + step));
      pieces.push({ blob: wav(part, RATE), seconds: part.length / RATE });
    }
    return pieces;
  }

  /* A slice whose tab died mid-recording ends in a cut-off cluster that the server rightly
   * refuses as truncated; the browser still decodes it, so it is sent as WAV instead. */
  async function repairToWav(blob) {
    const mono = await decodeMono(blob);
    if (!mono.length) throw new Error("no audio in the saved slice");
    return wav(mono, RATE);
  }

  function wav(samples, rate) {
    const buffer = new ArrayBuffer(44 + samples.length * 2);
    const view = new DataView(buffer);
    const text = (offset, s) => [...s].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
    text(0, "RIFF");
    view.setUint32(4, 36 + samples.length * 2, true);
    text(8, "WAVE");
    text(12, "fmt ");
    view.setUint32(16, 16, true);
    view.setUint16(20, 1, true); // PCM
    view.setUint16(22, 1, true); // mono
    view.setUint32(24, rate, true);
    view.setUint32(28, rate * 2, true);
    view.setUint16(32, 2, true);
    view.setUint16(34, 16, true);
    text(36, "data");
    view.setUint32(40, samples.length * 2, true);
    for (let i = 0; i < samples.length; i++) {
      const s = Math.max(-1, Math.min(1, samples[i]));
      view.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    }
    return new Blob([buffer], { type: "audio/wav" });
  }

  return { SliceRecorder, pickType, probeSeconds, cutToWav, repairToWav };
})();
