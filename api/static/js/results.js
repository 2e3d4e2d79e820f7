/* Rendering of revealed results, shared by the participant page and the dashboard:
 * the summary, the action items and the transcript with speakers. */
"use strict";

const MinaResults = (() => {
  const { el, clear, clock, percent } = Mina;

  function list(node, items) {
    clear(node);
    (items || []).forEach((text) => node.append(el("li", { text })));
    if (!items || !items.length) node.append(el("li", { class: "muted", text: "None." }));
  }

  /* nodes: {title, text, keyPoints, decisions, questions} */
  function summary(nodes, result) {
    nodes.title.textContent = result.title || "Summary";
    nodes.text.textContent = result.summary;
    list(nodes.keyPoints, result.key_points);
    list(nodes.decisions, result.decisions);
    list(nodes.questions, result.open_questions);
  }

  function actionItems(node, result, { confidence = false } = {}) {
    clear(node);
    for (const item of result.items) {
      const at = item.source_time !== null && item.source_time !== undefined;
      node.append(el("li", {},
        el("span", { class: "ai-text", text: item.text }),
        el("span", { class: "ai-meta" },
          item.owner ? el("span", { class: "tag", text: item.owner }) : null,
          item.due ? el("span", { class: "tag due", text: `due ${item.due}` }) : null,
          at ? el("span", { class: "muted", text: `at ${clock(item.source_time)}` }) : null,
          confidence ? el("span", { class: "muted", title: "confidence", text: percent(item.confidence) }) : null)));
    }
    // A notice says why there are none (e.g. rules that only know English).
    if (!result.items.length) node.append(el("li", { class: "muted notice-line", text: result.notice || "No action items." }));
  }

  /* Consecutive segments of one speaker become one paragraph; `names` fixes the colours (the
   * analytics' speaker order, so the transcript matches the charts). */
  function transcript(node, segments, names) {
    clear(node);
    const order = [...(names || [])];
    const colour = (who) => {
      if (!order.includes(who)) order.push(who);
      return order.indexOf(who) % 8;
    };
    let last;
    let para = null;
    for (const seg of segments) {
      if (!para || seg.speaker !== last) {
        para = el("p", { class: "seg", dataset: { start: String(seg.start) } }, el("span", { class: "seg-time", text: clock(seg.start) }),
          seg.speaker ? el("span", { class: "speaker", dataset: { colour: colour(seg.speaker) }, text: seg.speaker }) : null);
        node.append(para);
        last = seg.speaker;
      }
      para.append(` ${seg.text}`);
    }
    if (!segments.length) node.append(el("p", { class: "muted", text: "No transcript yet." }));
  }

  return { summary, actionItems, transcript };
})();
