/* The dashboard's outgoing webhooks (docs/webhooks.md): each subscription's state (paused, and
 * why), and the dead letters with their last error and a retry button. */
"use strict";

(() => {
  const { el, clear, time, api } = Mina;
  const $ = (id) => document.getElementById(id);
  const card = $("webhooks-card");
  if (!card) return;
  const subsNode = $("webhooks-subs");
  const deadNode = $("webhooks-dead");
  const statusNode = $("webhooks-status");
  const base = "/api/operator/webhooks";

  function subscription(s) {
    const counts = Object.entries(s.deliveries).map(([k, v]) => `${v} ${k}`).join(", ") || "none yet";
    return el("li", { class: `webhook-sub ${s.status}`, dataset: { id: s.id } },
      el("b", { text: s.status }), ` ${s.url} · ${s.event_types.join(", ")} · ${counts}`,
      s.paused_reason ? el("div", { class: "muted small", text: `paused: ${s.paused_reason}` }) : null);
  }

  function letter(d) {
    const button = el("button", { type: "button", class: "small", text: "Retry" });
    button.addEventListener("click", async () => {
      button.disabled = true;
      const r = await api(`${base}/deliveries/${d.id}/retry`, { method: "POST" });
      statusNode.textContent = r.ok ? `delivery ${d.id} queued again` : r.error;
      load();
    });
    return el("tr", { dataset: { id: String(d.id) } },
      el("td", { text: `${d.event_type} #${d.event_id}` }),
      el("td", { class: "muted", text: d.conversation_id || "–" }),
      el("td", { class: "num", text: String(d.attempts) }),
      el("td", { class: "error-text", text: d.last_error || "" }),
      el("td", { text: time(d.next_attempt_at) }),
      el("td", {}, button));
  }

  async function load() {
    const [subs, dead] = await Promise.all([
      api(`${base}/subscriptions`),
      api(`${base}/deliveries?status=dead&limit=50`),
    ]);
    if (!subs.ok || !dead.ok) {
      statusNode.textContent = subs.error || dead.error;
      return;
    }
    card.hidden = subs.data.subscriptions.length === 0 && dead.data.deliveries.length === 0;
    clear(subsNode);
    subs.data.subscriptions.forEach((s) => subsNode.append(subscription(s)));
    clear(deadNode);
    dead.data.deliveries.forEach((d) => deadNode.append(letter(d)));
    $("webhooks-dead-count").textContent = String(dead.data.deliveries.length);
  }

  load();
  setInterval(load, 15000);
})();
