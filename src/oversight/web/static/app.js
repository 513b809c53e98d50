// oversight web app: keyboard shortcuts and the dashboard's live refresh.
// Loaded as a static file (the Content-Security-Policy allows no inline script). Everything
// it writes into the page goes through textContent or attributes, never innerHTML.
"use strict";

(function () {
  const csrf = () => {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  };

  // A fetch that carries the CSRF token on every state-changing request.
  window.oversightFetch = function (url, options) {
    const opts = Object.assign({ credentials: "same-origin" }, options || {});
    const method = (opts.method || "GET").toUpperCase();
    if (method !== "GET" && method !== "HEAD") {
      opts.headers = Object.assign({}, opts.headers || {}, { "X-CSRF-Token": csrf() });
    }
    return fetch(url, opts);
  };

  // ---- keyboard shortcuts: any element with data-key="x" is pressed (or focused) by key x.
  let submitting = false;
  document.addEventListener("submit", () => { submitting = true; });

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    const typing = target instanceof HTMLElement &&
      (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
    if (typing) {
      if (event.key === "Escape") target.blur();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : "";
    if (!key) return;
    const el = document.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (!el) return;
    event.preventDefault();
    if (el.tagName === "TEXTAREA" || el.tagName === "INPUT") {
      el.focus();
      return;
    }
    if (submitting) return; // one key press, one label: the page is already on its way
    el.click();
  });

  const pct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%");
  const num = (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(3));

  function setText(root, field, value) {
    const el = root.querySelector(`[data-field="${field}"]`);
    if (el && el.textContent !== String(value)) el.textContent = String(value);
  }

  function showEstimate(root, m) {
    if (!m.estimate) return;
    setText(root, "rate", pct(m.estimate.rate));
    setText(root, "ci", `[${pct(m.estimate.ci_low)}, ${pct(m.estimate.ci_high)}]`);
    setText(root, "n", m.estimate.n_labelled);
    setText(root, "updating", m.estimate_updating ? " · updating…" : "");
  }

  // ---- an estimate still being computed (large stores): fetch it until it is current.
  for (const block of document.querySelectorAll("[data-estimate][data-updating][data-estimate-of]")) {
    const name = block.getAttribute("data-estimate-of");
    const poll = async () => {
      try {
        const response = await window.oversightFetch(`/api/monitors/${encodeURIComponent(name)}/estimate`);
        if (response.ok) {
          const m = await response.json();
          showEstimate(block, m);
          if (!m.estimate_updating) return;
        }
      } catch (_) { /* try again */ }
      window.setTimeout(poll, 1500);
    };
    window.setTimeout(poll, 1000);
  }

  // ---- dashboard: refresh counts and estimates while labels arrive.
  const live = document.querySelector("[data-live-dashboard]");
  if (!live) return;
  let labelsSeen = null;

  async function refresh() {
    if (document.hidden) return;
    let data;
    try {
      const response = await window.oversightFetch("/api/dashboard");
      if (!response.ok) return;
      data = await response.json();
    } catch (_) {
      return;
    }
    for (const [name, value] of Object.entries({ transcripts: data.transcripts, labels: data.labels, labelled_transcripts: data.labelled_transcripts })) {
      const el = document.querySelector(`[data-total="${name}"]`);
      if (el) el.textContent = String(value);
    }
    for (const m of data.monitors) {
      const card = Array.from(document.querySelectorAll("[data-monitor]")).find(
        (c) => c.dataset.monitor === m.monitor && c.dataset.version === m.version);
      if (!card) continue;
      setText(card, "n_scored", m.n_scored);
      setText(card, "n_errors", m.n_errors);
      setText(card, "n_flagged", m.n_flagged);
      setText(card, "flagged_rate", pct(m.flagged_rate));
      setText(card, "mean_score", num(m.mean_score));
      setText(card, "n_labelled", m.n_labelled);
      setText(card, "n_faults_labelled", m.n_faults_labelled);
      showEstimate(card, m);
    }
    if (labelsSeen !== null && labelsSeen !== data.labels) {
      // Labels changed: the estimates' bars and the calibration plots are redrawn by a reload
      // of the images; numbers above are already current.
      for (const img of document.querySelectorAll("img[data-calibration]")) {
        const url = new URL(img.src, window.location.href);
        url.searchParams.set("t", String(data.labels));
        img.src = url.toString();
      }
    }
    labelsSeen = data.labels;
  }

  refresh();
  window.setInterval(refresh, 5000);
})();
