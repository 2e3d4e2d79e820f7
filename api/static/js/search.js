/* The dashboard's search over every meeting (docs/memory.md). A hit opens its conversation with
 * the transcript scrolled to that moment; `/dashboard#c=ID&t=SECONDS` does the same on load. */
"use strict";

(() => {
  const { el, clear, clock, api } = Mina;
  const $ = (id) => document.getElementById(id);
  const form = $("search-form");
  if (!form) return;
  const hitsNode = $("search-hits");
  const statusNode = $("search-status");
  const moreButton = $("search-more");
  let current = null;

  const decode = (s) => s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");

  /* The server escapes everything but <mark>: rebuilt from text nodes, never innerHTML. */
  function snippet(html) {
    const node = el("span", { class: "snippet" });
    html.split(/<\/?mark>/).forEach((part, i) => {
      const text = decode(part);
      node.append(i % 2 ? el("mark", { text }) : document.createTextNode(text));
    });
    return node;
  }

  function hit(h) {
    const day = h.meeting_at.slice(0, 10);
    return el("li", { class: "search-hit", dataset: { conversation: h.conversation_id, start: String(h.start) } },
      el("div", { class: "muted small" },
        `${day} · ${h.title || h.conversation_id} · `,
        el("a", { href: h.link, class: "search-open", text: `open at ${clock(h.start)}`, onclick: (e) => open(e, h) }),
        h.audio_url ? " · " : null,
        h.audio_url ? el("a", { href: h.audio_url, target: "_blank", rel: "noopener", text: "play from here" }) : null),
      el("div", {}, el("b", { text: `${h.speaker || "?"}: ` }), snippet(h.snippet)));
  }

  async function run(offset) {
    const params = new URLSearchParams({ q: $("search-q").value.trim(), limit: "20", offset: String(offset) });
    const speaker = $("search-speaker").value.trim();
    if (speaker) params.set("speaker", speaker);
    if ($("search-from").value) params.set("from", $("search-from").value);
    if ($("search-to").value) params.set("to", $("search-to").value);
    if (!params.get("q")) return;
    current = params;
    const r = await api(`/api/search?${params}`);
    if (current !== params) return; // a newer search is under way
    if (offset === 0) clear(hitsNode);
    if (!r.ok) {
      statusNode.textContent = r.error;
      moreButton.hidden = true;
      return;
    }
    r.data.hits.forEach((h) => hitsNode.append(hit(h)));
    const shown = hitsNode.children.length;
    statusNode.textContent = shown ? `${shown} hit${shown === 1 ? "" : "s"}` : "Nothing found.";
    moreButton.hidden = r.data.next_offset === null;
    moreButton.dataset.offset = String(r.data.next_offset || 0);
  }

  function open(event, h) {
    if (!window.minaSelect) return; // not the dashboard: follow the link
    event.preventDefault();
    window.minaSelect(h.conversation_id);
    seek(h.conversation_id, h.start);
  }

  /* Once the conversation's transcript is shown, bring the segment at `t` into view. */
  function seek(id, t, tries = 150) {
    const paras = [...document.querySelectorAll("#d-transcript p.seg[data-start]")];
    const ready = $("d-id") && $("d-id").textContent.includes(id) && paras.length;
    if (!ready) {
      if (tries > 0) setTimeout(() => seek(id, t, tries - 1), 100);
      return;
    }
    const tabButton = document.querySelector('.tabs button[data-tab="transcript"]');
    if (tabButton) tabButton.click();
    const at = paras.filter((p) => Number(p.dataset.start) <= t + 0.05).pop() || paras[0];
    paras.forEach((p) => p.classList.remove("seg-hit"));
    at.classList.add("seg-hit");
    at.scrollIntoView({ block: "center" });
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    run(0);
  });
  moreButton.addEventListener("click", () => run(Number(moreButton.dataset.offset)));
  const fromHash = /^#c=([0-9a-f]+)&t=([0-9.]+)$/.exec(location.hash);
  if (fromHash) seek(fromHash[1], Number(fromHash[2]));
})();
