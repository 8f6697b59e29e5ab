// The recordings page: list from GET /api/recordings, sort, filter, Replay and Download.

import { DASH, fmtBytes, fmtDate, fmtDuration, fmtLapTime, fmtText, isNum } from "./format.js";
import { matchesFilter, sizeOf, sortRecordings } from "./reclist.js";

const $ = (id) => document.getElementById(id);
const view = { all: [], sortKey: "first_time", descending: true };

function showMessage(text) {
  const box = $("rec-message");
  box.hidden = !text;
  box.textContent = text || "";
}

function cell(label, textContent, className) {
  const td = document.createElement("td");
  td.textContent = textContent;
  td.dataset.label = label; // shown before the value when the table becomes cards on a phone
  if (className) td.className = className;
  return td;
}

// Tornado's XSRF token (the page carries it; its cookie is set with the page).
function xsrfHeaders() {
  const meta = document.querySelector('meta[name="xsrf-token"]');
  if (meta && meta.content) return { "X-XSRFToken": meta.content };
  const m = /(?:^|;\s*)_xsrf=([^;]+)/.exec(document.cookie);
  return m ? { "X-XSRFToken": decodeURIComponent(m[1]) } : {};
}

async function startReplay(rec, button) {
  button.disabled = true;
  showMessage("");
  try {
    const res = await fetch(`/api/recordings/${encodeURIComponent(rec.session_id)}/replay`, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...xsrfHeaders() },
      body: "{}",
      credentials: "same-origin",
    });
    const body = await res.json().catch(() => null);
    if (!res.ok || !body || !body.ok || typeof body.dashboard_url !== "string") {
      throw new Error((body && body.message) || `HTTP ${res.status}`);
    }
    window.location.assign(body.dashboard_url);
  } catch (err) {
    showMessage(`Could not start the replay: ${err.message}`);
    button.disabled = false;
  }
}

function row(rec) {
  const tr = document.createElement("tr");
  tr.dataset.sessionId = rec.session_id;
  const drivers = Array.isArray(rec.drivers) && rec.drivers.length ? rec.drivers.join(", ") : DASH;
  // The first 8 characters tell recordings of one car apart; the whole id is a viewer's secret.
  const idCell = cell("ID", "");
  const prefix = document.createElement("code");
  prefix.className = "id-prefix";
  prefix.textContent = rec.session_id.slice(0, 8);
  idCell.append(prefix);
  tr.append(
    idCell,
    cell("Track", fmtText(rec.track)),
    cell("Car", fmtText(rec.car)),
    cell("Drivers", drivers),
    cell("Date", fmtDate(rec.first_time), "num"),
    cell("Duration", fmtDuration(rec.duration), "num"),
    cell("Laps", isNum(rec.laps) ? String(rec.laps) : DASH, "num"),
    // Known once the recording's race tables were built (a lap export or a replay); blank before.
    cell("Best lap", fmtLapTime(rec.best_lap), "num"),
    cell("Size", fmtBytes(sizeOf(rec)), "num"),
  );
  const status = cell("Status", "");
  const badge = document.createElement("span");
  badge.className = rec.live ? "badge mode-live" : "badge ended";
  // LIVE: a monitor is publishing now. A recording still open without one waits for its monitor.
  badge.textContent = rec.live ? "LIVE" : rec.state === "live" ? "no monitor" : typeof rec.state === "string" ? rec.state : "ended";
  status.append(badge);
  const cellActions = document.createElement("td");
  const actions = document.createElement("div");
  actions.className = "actions";
  cellActions.append(actions);
  const replay = document.createElement("button");
  replay.type = "button";
  replay.className = "btn";
  replay.textContent = "Replay";
  replay.addEventListener("click", () => startReplay(rec, replay));
  const download = document.createElement("a");
  download.className = "btn btn-secondary";
  download.href = `/api/recordings/${encodeURIComponent(rec.session_id)}.jsonl`;
  download.textContent = "Download";
  download.setAttribute("download", `${rec.session_id}.jsonl`);
  const csv = document.createElement("a");
  csv.className = "btn btn-secondary";
  csv.href = `/api/recordings/${encodeURIComponent(rec.session_id)}/laps.csv`;
  csv.textContent = "Laps CSV";
  csv.setAttribute("download", `${rec.session_id}-laps.csv`);
  actions.append(replay, download, csv);
  tr.append(status, cellActions);
  return tr;
}

function render() {
  const query = $("rec-filter").value;
  const status = $("rec-status").value;
  const shown = sortRecordings(view.all.filter((r) => matchesFilter(r, query, status)), view.sortKey, view.descending);
  $("rec-body").replaceChildren(...shown.map(row));
  $("rec-count").textContent = `${shown.length} of ${view.all.length} recordings`;
  for (const th of document.querySelectorAll("#rec-table th")) {
    const button = th.querySelector("button[data-sort]");
    if (!button) continue;
    const active = button.dataset.sort === view.sortKey;
    th.setAttribute("aria-sort", active ? (view.descending ? "descending" : "ascending") : "none");
  }
}

async function load() {
  try {
    const res = await fetch("/api/recordings", { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (res.status === 404) {
      showMessage("This server does not offer recordings.");
      return;
    }
    if (res.status === 401 || res.status === 403) {
      showMessage("Recordings need team access: log in first.");
      return;
    }
    const body = await res.json();
    if (!res.ok) throw new Error((body && body.message) || `HTTP ${res.status}`);
    view.all = Array.isArray(body.recordings) ? body.recordings.filter((r) => r && typeof r.session_id === "string") : [];
    if (!view.all.length) showMessage("No recordings yet.");
    render();
  } catch (err) {
    showMessage(`Could not load the recordings: ${err.message}`);
  }
}

// The column headers sort on a laptop; the select also works on a phone, where the table is cards.
function syncSortSelect() {
  const value = `${view.sortKey}:${view.descending ? "desc" : "asc"}`;
  const select = $("rec-sort");
  if ([...select.options].some((o) => o.value === value)) select.value = value;
}

for (const button of document.querySelectorAll("#rec-table button[data-sort]")) {
  button.addEventListener("click", () => {
    const key = button.dataset.sort;
    view.descending = view.sortKey === key ? !view.descending : key === "first_time";
    view.sortKey = key;
    syncSortSelect();
    render();
  });
}
$("rec-sort").addEventListener("change", () => {
  const [key, direction] = $("rec-sort").value.split(":");
  view.sortKey = key;
  view.descending = direction === "desc";
  render();
});
$("rec-filter").addEventListener("input", render);
$("rec-status").addEventListener("change", render);
load();
