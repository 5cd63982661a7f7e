// opsledger status board: reads the same JSON API legacy callers use.
// Every value from tickets and receipts is inserted with textContent, never as HTML.
"use strict";

const REFRESH_MS = 4000;
const STATUSES = ["OPEN", "IN_PROGRESS", "DONE", "FAILED"];
const state = { status: "", type: "", size: 50, token: "", back: [], detail: null };
const $ = (id) => document.getElementById(id);
let detailPanel = null; // held here: the panel is moved between rows and is briefly out of the document
const panelEl = () => detailPanel || (detailPanel = $("detail-panel"));
const inPanel = (id) => panelEl().querySelector("#" + id);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function badge(status) {
  const b = el("span", status || "—", "badge " + (status || ""));
  b.title = status || "";
  return b;
}

async function getJSON(url) {
  const res = await fetch(url, { headers: { "Accept": "application/json" } });
  const body = await res.json();
  if (!res.ok) throw new Error(body.message || res.statusText);
  return body;
}

function boardURL(extra) {
  const q = new URLSearchParams();
  if (state.status) q.append("status", state.status);
  if (state.type) q.append("request_type", state.type);
  for (const [k, v] of Object.entries(extra || {})) if (v) q.append(k, v);
  return "/api/tickets/latest?" + q.toString();
}

function fmtTime(iso) { return iso ? iso.replace("T", " ") : "—"; }

async function refreshCounts() {
  const box = $("counts");
  const parts = await Promise.all(STATUSES.map(async (s) => {
    const q = new URLSearchParams({ status: s, page_size: "1" });
    if (state.type) q.append("request_type", state.type);
    const body = await getJSON("/api/tickets/latest?" + q.toString());
    return [s, body.total_count];
  }));
  box.replaceChildren(...parts.map(([s, n]) => {
    const c = el("span", null, "count");
    c.dataset.status = s;
    c.append(badge(s), " ", el("strong", n));
    return c;
  }));
}

async function refreshBoard() {
  const current = state.back.length ? state.back[state.back.length - 1] : "";
  const body = await getJSON(boardURL({ page_size: String(state.size), page_token: current }));
  const rows = body.rows.map((r) => {
    const tr = el("tr", null, "ticket");
    tr.tabIndex = 0;
    tr.dataset.requestId = r.request_id;
    tr.dataset.status = r.current_status;
    const st = el("td"); st.append(badge(r.current_status));
    const msg = el("td", r.last_message === null ? "—" : r.last_message, "msg-cell");
    tr.classList.toggle("selected", r.request_id === state.detail);
    tr.append(st, el("td", r.request_type), el("td", fmtTime(r.requested_at), "time"),
      el("td", fmtTime(r.last_processed_at), "time"), msg, idCell(r.request_id));
    tr.addEventListener("click", () => openDetail(r.request_id));
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter") openDetail(r.request_id); });
    return tr;
  });
  $("rows").replaceChildren(...rows);
  placeDetail();
  $("asof").textContent = "as of " + fmtTime(body.asof);
  state.next = body.next_page_token;
  $("next").disabled = !body.next_page_token;
  $("prev").disabled = state.back.length === 0;
  const first = state.back.length * state.size;
  $("page-info").textContent = body.row_count
    ? `${first + 1}–${first + body.row_count} of ${body.total_count}` : `0 of ${body.total_count}`;
}

function idCell(id) {
  const td = el("td", null, "id-cell");
  const code = el("code", id);
  code.title = id;
  td.append(code);
  return td;
}

// The detail lives in a row right under its ticket (re-placed after each
// refresh); when the ticket is not on this page, at the top of the table.
function placeDetail() {
  const panel = panelEl();
  const old = document.querySelector("#rows tr.detail-row");
  if (!state.detail) {
    $("detail-home").append(panel);
    if (old) old.remove();
    return;
  }
  const row = old || el("tr", null, "detail-row");
  if (!old) { const td = el("td"); td.colSpan = 6; row.append(td); }
  row.firstChild.append(panel);
  const ticket = [...document.querySelectorAll("#rows tr.ticket")].find((tr) => tr.dataset.requestId === state.detail);
  if (ticket) ticket.after(row); else $("rows").prepend(row);
}

async function openDetail(id) {
  state.detail = id;
  for (const tr of document.querySelectorAll("#rows tr.ticket")) {
    tr.classList.toggle("selected", tr.dataset.requestId === id);
  }
  await refreshDetail();
  placeDetail();
  const panel = panelEl();
  panel.hidden = false;
  panel.focus({ preventScroll: true });
  // Keep the clicked row and the start of its detail in sight.
  const box = panel.getBoundingClientRect();
  if (box.top > window.innerHeight * 0.6 || box.top < 0) {
    const ticket = document.querySelector("#rows tr.ticket.selected");
    (ticket || panel).scrollIntoView({ block: "start" });
  }
}

function closeDetail() {
  state.detail = null;
  panelEl().hidden = true;
  for (const tr of document.querySelectorAll("#rows tr.selected")) tr.classList.remove("selected");
  placeDetail();
}

async function refreshDetail() {
  if (!state.detail) return;
  const t = await getJSON("/api/tickets/" + encodeURIComponent(state.detail));
  inPanel("d-id").textContent = t.row.request_id;
  const kv = inPanel("d-summary");
  kv.replaceChildren();
  const add = (k, v) => { kv.append(el("dt", k)); const dd = el("dd"); dd.append(v); kv.append(dd); };
  add("Status", badge(t.row.current_status));
  add("Type", t.row.request_type);
  add("Requested", fmtTime(t.row.requested_at));
  kv.lastChild.classList.add("time");
  add("Trace", t.row.trace_id === null ? "—" : t.row.trace_id);
  inPanel("d-payload").textContent = JSON.stringify(t.request.payload, null, 2);
  const rows = t.results.map((r, i) => {
    const tr = el("tr");
    const st = el("td"); st.append(badge(r.status));
    tr.append(el("td", i + 1), st, el("td", fmtTime(r.processed_at), "time"), el("td", r.processor_id),
      el("td", r.message, "msg-cell"), el("td", r.artifacts.join("\n") || "—", "msg-cell"));
    return tr;
  });
  inPanel("d-results").querySelector("tbody").replaceChildren(...rows);
}

// Fresh or stale is said only of a bundle that was read and is valid.
function bundleState(b) {
  if (b.decision === "NO_BUNDLE") return "none published";
  if (!b.valid) return "unusable";
  return b.stale ? "stale" : "fresh";
}

function stepText(parts) { return parts.filter((p) => p !== null && p !== undefined && p !== "").join(" · "); }

async function refreshCycle() {
  const body = await getJSON("/api/live/cycle/latest");
  if (body.status !== "ready" || !body.rows.length) {
    $("cycle-empty").hidden = false; $("cycle").hidden = true; return;
  }
  const r = body.rows[0];
  $("cycle-empty").hidden = true; $("cycle").hidden = false;
  $("c-result").replaceWith(Object.assign(badge(r.result), { id: "c-result" }));
  $("c-decision").textContent = r.decision;
  $("c-reason").textContent = r.reason;
  $("c-id").textContent = r.cycle_id;
  $("c-asof").textContent = fmtTime(r.asof);
  $("c-bundle").textContent = stepText([r.bundle.decision, bundleState(r.bundle), r.bundle.error]);
  $("c-reco").textContent = stepText([r.reco.decision, r.reco.reason, r.reco.error]);
  $("c-summary").textContent = stepText([r.ops_summary.snapshot_ref || "not written", r.ops_summary.error]);
  $("c-push").textContent = stepText([r.push.delivery_actual, r.push.error]);
  $("c-snapshot").textContent = r.snapshot_ref;
  $("c-hash").textContent = r.integrity.payload_sha256;
  const reco = await getJSON("/api/live/reco/latest");
  const tbody = $("reco").querySelector("tbody");
  if (reco.status !== "ready") {
    $("r-meta").textContent = "";
    tbody.replaceChildren(emptyReco("No recommendation report yet" + (r.reco.error ? ": " + r.reco.error : ".")));
    return;
  }
  const rep = reco.report;
  $("r-meta").textContent = `${rep.decision} · cash ${rep.summary.cash_pct}`;
  if (!rep.recommendations.length) {
    // Say why the table is empty: blocked (and the receipt's reason) or nothing to hold.
    const why = rep.decision === "BLOCKED"
      ? `Blocked: no recommendations (${rep.reason})` + (r.reco.error ? ` — ${r.reco.error}` : "")
      : `No recommendations: ${rep.decision} (${rep.reason})`;
    tbody.replaceChildren(emptyReco(why));
    return;
  }
  tbody.replaceChildren(...rep.recommendations.map((x) => {
    const tr = el("tr");
    tr.append(el("td", x.ticker), el("td", x.name === null ? "—" : x.name), el("td", x.action),
      el("td", (x.weight_pct * 100).toFixed(2) + "%"), el("td", x.signal_score), el("td", x.rationale, "msg-cell"));
    return tr;
  }));
}

function emptyReco(text) {
  const tr = el("tr");
  const td = el("td", text, "empty");
  td.id = "r-empty";
  td.colSpan = 6;
  tr.append(td);
  return tr;
}

async function runCycle() {
  const msg = $("run-msg");
  msg.className = "msg";
  if (!window.confirm("Run one live cycle now? It writes reports and a receipt (nothing is sent or ordered).")) {
    msg.textContent = "Cancelled."; return;
  }
  msg.textContent = "Running…";
  const headers = { "Content-Type": "application/json" };
  const token = $("token").value.trim();
  if (token) headers["Authorization"] = "Bearer " + token;
  try {
    const res = await fetch("/api/live/cycle/run", { method: "POST", headers, body: JSON.stringify({ confirm: true }) });
    const body = await res.json();
    if (res.status === 401) {
      msg.className = "msg error";
      msg.textContent = "Refused: this server needs a token. Enter it above and run again. (" + body.message + ")";
      return;
    }
    if (!res.ok) { msg.className = "msg error"; msg.textContent = "Refused: " + body.message; return; }
    const r = body.receipt;
    msg.textContent = `Cycle ${r.cycle_id.slice(0, 8)}: ${r.result} / ${r.decision} / ${r.reason}`;
    await refreshCycle();
  } catch (e) {
    msg.className = "msg error"; msg.textContent = "Could not reach the server: " + e.message;
  }
}

async function refreshAll() {
  try {
    await Promise.all([refreshBoard(), refreshCounts(), refreshCycle(), refreshDetail()]);
    $("conn").textContent = "";
  } catch (e) {
    $("conn").textContent = "refresh failed: " + e.message;
  }
}

function readFilters() {
  state.status = $("f-status").value;
  state.type = $("f-type").value;
  state.size = Number($("f-size").value);
  state.back = [];
  const q = new URLSearchParams();
  if (state.status) q.set("status", state.status);
  if (state.type) q.set("type", state.type);
  history.replaceState(null, "", q.toString() ? "#" + q.toString() : location.pathname);
  refreshAll();
}

function init() {
  const q = new URLSearchParams(location.hash.slice(1));
  if (q.get("status")) $("f-status").value = q.get("status");
  if (q.get("type")) $("f-type").value = q.get("type");
  state.status = $("f-status").value; state.type = $("f-type").value;
  $("token").value = sessionStorage.getItem("opsledger-token") || "";
  $("token").addEventListener("change", () => sessionStorage.setItem("opsledger-token", $("token").value));
  for (const id of ["f-status", "f-type", "f-size"]) $(id).addEventListener("change", readFilters);
  $("next").addEventListener("click", () => { if (state.next) { state.back.push(state.next); refreshBoard(); } });
  $("prev").addEventListener("click", () => { state.back.pop(); refreshBoard(); });
  inPanel("d-close").addEventListener("click", closeDetail);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && state.detail) closeDetail(); });
  $("run-cycle").addEventListener("click", runCycle);
  startLive(refreshAll, REFRESH_MS); // live.js: first view once the event stream is open; polling only as a fallback
}

document.addEventListener("DOMContentLoaded", init);
