/* Analytics charts (Chart.js, vendored): talk share per speaker, talk share over time. */
"use strict";

const MinaCharts = (() => {
  const PALETTE = ["#3b6fd8", "#e07a3f", "#2f9e74", "#b356c9", "#d4a72c", "#d04b5e", "#4aa3b5", "#7a7f8c"];
  const charts = new WeakMap();

  function colour(i) {
    return PALETTE[i % PALETTE.length];
  }

  function draw(canvas, config) {
    if (!window.Chart || !canvas) return null;
    const old = charts.get(canvas);
    if (old) old.destroy();
    const chart = new Chart(canvas, config);
    charts.set(canvas, chart);
    return chart;
  }

  function speakerNames(analytics) {
    return (analytics.speakers || []).map((s) => s.speaker);
  }

  function share(canvas, analytics) {
    const speakers = analytics.speakers || [];
    return draw(canvas, {
      type: "doughnut",
      data: {
        labels: speakers.map((s) => s.speaker),
        datasets: [{
          data: speakers.map((s) => Math.round(s.share * 1000) / 10),
          backgroundColor: speakers.map((_, i) => colour(i)),
          borderWidth: 1,
        }],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        cutout: "55%",
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 12 } },
          tooltip: { callbacks: { label: (c) => `${c.label}: ${c.parsed}%` } },
        },
      },
    });
  }

  function timeline(canvas, analytics) {
    const names = speakerNames(analytics);
    const points = analytics.timeline || [];
    return draw(canvas, {
      type: "bar",
      data: {
        labels: points.map((p) => Mina.clock(p.start)),
        datasets: names.map((name, i) => ({
          label: name,
          data: points.map((p) => Math.round((p.shares[name] || 0) * 1000) / 10),
          backgroundColor: colour(i),
          borderWidth: 0,
        })),
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          x: { stacked: true, grid: { display: false }, title: { display: true, text: "time" } },
          y: { stacked: true, min: 0, max: 100, ticks: { callback: (v) => `${v}%` } },
        },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
      },
    });
  }

  /* The per-speaker table under the charts. */
  function table(node, analytics) {
    const { el, clear, clock, percent } = Mina;
    clear(node);
    node.append(el("thead", {}, el("tr", {},
      ["Speaker", "Talk time", "Share", "Words", "WPM", "Turns", "Longest", "Interruptions", "Questions", "Fillers"]
        .map((h) => el("th", { text: h })))));
    const body = el("tbody");
    (analytics.speakers || []).forEach((s, i) => {
      body.append(el("tr", {},
        el("td", {}, el("span", { class: "swatch", dataset: { colour: i % PALETTE.length } }), s.speaker),
        el("td", { text: clock(s.talk_seconds) }),
        el("td", { text: percent(s.share) }),
        el("td", { text: s.words }),
        el("td", { text: Math.round(s.wpm) }),
        el("td", { text: s.turns }),
        el("td", { text: clock(s.longest_monologue_seconds) }),
        el("td", { text: s.interruptions }),
        el("td", { text: s.questions }),
        el("td", { text: analytics.fillers_counted === false ? "–" : s.fillers })));
    });
    node.append(body);
    const notes = (analytics.notices || []).map((n) => ` · ${n}`).join("");
    const foot = `Duration ${clock(analytics.duration)} · silence ${clock(analytics.silence_seconds)}${notes}`;
    node.append(el("caption", { text: foot }));
  }

  function render({ shareCanvas, timelineCanvas, tableNode }, analytics) {
    share(shareCanvas, analytics);
    timeline(timelineCanvas, analytics);
    if (tableNode) table(tableNode, analytics);
  }

  return { render, colour, PALETTE };
})();
