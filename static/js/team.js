// The team view: every live car, from GET /api/live every 2 s (team only). Rows are updated in
// place, keyed by session id, so a ticked checkbox survives each poll. Ticking 2 to 4 cars opens
// them side by side on /cars. The server works out every figure; the page only formats them.

import { DASH, fmtLapTime, fmtLitres, fmtPosition, fmtText, isNum } from "./format.js";

const POLL_MS = 2000;
const MIN_CARS = 2;
const MAX_CARS = 4;
const $ = (id) => document.getElementById(id);
const selected = new Set();

const COLUMNS = [
  ["Driver", (s) => fmtText(s.driver)],
  ["Car", (s) => fmtText(s.car)],
  ["Track", (s) => fmtText(s.track)],
  ["Lap", (s) => (isNum(s.lap) ? String(s.lap) : DASH)],
  ["Pos", (s) => fmtPosition(s.position)],
  ["Fuel", (s) => fmtLitres(s.fuel)],
  ["Last lap", (s) => fmtLapTime(s.last_lap)],
  ["Best lap", (s) => fmtLapTime(s.best_lap)],
  ["State", (s) => fmtText(s.state)],
];

function showMessage(text) {
  const box = $("team-message");
  box.hidden = !text;
  box.textContent = text || "";
}

function updateCompare() {
  const n = selected.size;
  $("compare").disabled = n < MIN_CARS || n > MAX_CARS;
  $("compare-hint").textContent = n > MAX_CARS ? `at most ${MAX_CARS} cars` : `select ${MIN_CARS} to ${MAX_CARS} cars (${n} selected)`;
}

function newRow(session) {
  const tr = document.createElement("tr");
  tr.dataset.sessionId = session.session_id;
  const pick = document.createElement("td");
  pick.dataset.label = "Select";
  const box = document.createElement("input");
  box.type = "checkbox";
  box.className = "pick";
  box.setAttribute("aria-label", "select for comparison");
  box.addEventListener("change", () => {
    if (box.checked) selected.add(session.session_id);
    else selected.delete(session.session_id);
    updateCompare();
  });
  pick.append(box);
  tr.append(pick);
  for (const [label] of COLUMNS) {
    const td = document.createElement("td");
    td.dataset.label = label;
    tr.append(td);
  }
  const link = document.createElement("td");
  link.dataset.label = "Dashboard";
  const a = document.createElement("a");
  a.className = "btn btn-secondary";
  a.textContent = "Dashboard";
  a.rel = "noreferrer";
  link.append(a);
  tr.append(link);
  return tr;
}

function fillRow(tr, session) {
  for (const [label, format] of COLUMNS) {
    const td = tr.querySelector(`td[data-label="${label}"]`);
    const text = format(session);
    if (td.textContent !== text) td.textContent = text;
  }
  const state = tr.querySelector('td[data-label="State"]');
  state.className = session.publisher_connected === false || session.stale ? "state-warn" : "";
  tr.querySelector("a").href = session.dashboard_url;
  tr.querySelector("input.pick").checked = selected.has(session.session_id);
}

function render(sessions) {
  const body = $("team-body");
  const existing = new Map([...body.children].map((tr) => [tr.dataset.sessionId, tr]));
  const rows = sessions.map((s) => {
    const tr = existing.get(s.session_id) || newRow(s);
    fillRow(tr, s);
    return tr;
  });
  // Forget selections of sessions that ended.
  const live = new Set(sessions.map((s) => s.session_id));
  for (const id of [...selected]) if (!live.has(id)) selected.delete(id);
  body.replaceChildren(...rows);
  $("team-count").textContent = `${sessions.length} live ${sessions.length === 1 ? "car" : "cars"}`;
  updateCompare();
}

async function poll() {
  try {
    const res = await fetch("/api/live", { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (res.status === 401 || res.status === 403) {
      showMessage("The team view needs team access: log in again.");
      return; // no point in polling until the user logs in
    }
    const body = await res.json();
    if (!res.ok || !body || !body.ok) throw new Error((body && body.message) || `HTTP ${res.status}`);
    const sessions = Array.isArray(body.sessions) ? body.sessions.filter((s) => s && typeof s.session_id === "string") : [];
    showMessage(sessions.length ? "" : "No live cars right now.");
    render(sessions);
  } catch (err) {
    showMessage(`Could not load the live cars: ${err.message}`);
  }
  setTimeout(poll, POLL_MS);
}

$("compare").addEventListener("click", () => {
  if (selected.size < MIN_CARS || selected.size > MAX_CARS) return;
  const order = [...$("team-body").children].map((tr) => tr.dataset.sessionId).filter((id) => selected.has(id));
  window.location.assign(`/cars?ids=${order.map(encodeURIComponent).join(",")}`);
});
updateCompare();
poll();
