// Live board: follows GET /api/tickets/events (Server-Sent Events) and refreshes
// the view when the ledger changes; polls only while the stream is down.
"use strict";

const LIVE_RETRY_MS = 5000; // a stream the browser gave up on is reopened after this
const live = { source: null, poll: null, refresh: null, timer: null, pollMs: 4000 };

function setLive(state, text) {
  const node = document.getElementById("live");
  node.dataset.state = state;
  node.textContent = text;
  node.title = state === "live" ? "following the ledger's event stream"
    : "the event stream is down: polling every " + live.pollMs / 1000 + " s until it is back";
}

// Events come in bursts (a batch commits many lines): one refresh per burst.
function refreshSoon() {
  if (live.timer !== null) return;
  live.timer = setTimeout(() => { live.timer = null; live.refresh(); }, 100);
}

function startPolling() {
  if (live.poll === null) live.poll = setInterval(live.refresh, live.pollMs);
}

function stopPolling() {
  if (live.poll !== null) { clearInterval(live.poll); live.poll = null; }
}

function openStream() {
  // From now on; the refresh on open covers everything before. When the
  // browser reconnects by itself it sends Last-Event-ID and misses nothing.
  const es = new EventSource("/api/tickets/events");
  live.source = es;
  // The view is read once the stream is open: nothing committed in between is missed.
  es.onopen = () => { setLive("live", "● live"); stopPolling(); live.refresh(); };
  es.onmessage = (e) => {
    const event = JSON.parse(e.data);
    if (event.kind !== "PROGRESS") refreshSoon();
  };
  es.onerror = () => {
    setLive("reconnecting", "reconnecting…");
    if (live.poll === null) live.refresh();
    startPolling();
    if (es.readyState === EventSource.CLOSED) setTimeout(openStream, LIVE_RETRY_MS);
  };
}

function startLive(refresh, pollMs) {
  live.refresh = refresh;
  live.pollMs = pollMs;
  if (!window.EventSource) { setLive("polling", "polling"); refresh(); startPolling(); return; }
  setLive("reconnecting", "connecting…");
  openStream();
}
