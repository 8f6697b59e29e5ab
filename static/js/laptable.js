// The lap table and the stint table: the server's lap rows and stints (race.js), sortable lap
// table with the stint best and the driver best marked by a symbol as well as a colour. The
// figures are the server's; the page only picks (which clean lap is a best) and formats.
// lapTableRows/sortLapRows are pure (tested in the browser); LapTable and renderStintTable draw.

import { DASH, bareTemp, fmtLapTime, fmtLitres, isNum, tempUnit } from "./format.js";

const CORNERS = ["fl", "fr", "rl", "rr"];

// Flags of a lap row as short text badges (never colour alone).
export function lapFlags(row) {
  const flags = [];
  if (row.in_lap) flags.push("IN");
  if (row.out_lap) flags.push("OUT");
  if (row.pit_lap) flags.push("PIT");
  if (row.incomplete) flags.push("INC");
  if (!(isNum(row.time) && row.time > 0)) flags.push("UNTIMED");
  return flags;
}

const cleanTime = (row) => (row.clean === true && isNum(row.time) && row.time > 0 ? row.time : null);

// The hottest corner of a per-corner object, as {corner, value} (null when none is known).
function hottest(byCorner) {
  let best = null;
  for (const c of CORNERS) {
    const v = byCorner && byCorner[c];
    if (isNum(v) && v > -273 && (best === null || v > best.value)) best = { corner: c, value: v };
  }
  return best;
}

// The lap rows with `stintBest` / `driverBest` marks: the fastest clean lap of each stint and of
// each driver (the first one on a tie). In-, out-, pit and incomplete laps never count.
export function lapTableRows(laps) {
  const stintBest = new Map();
  const driverBest = new Map();
  for (const row of laps) {
    const time = cleanTime(row);
    if (time === null) continue;
    const s = stintBest.get(row.stint);
    if (!s || time < s.time) stintBest.set(row.stint, row);
    const d = driverBest.get(row.driver);
    if (!d || time < d.time) driverBest.set(row.driver, row);
  }
  return laps.map((row) => ({
    row,
    stintBest: stintBest.get(row.stint) === row,
    driverBest: driverBest.get(row.driver) === row,
  }));
}

// How each column sorts: a number or a string; unknown values always go last.
const SORT_VALUES = {
  lap: (r) => r.lap,
  time: (r) => (isNum(r.time) && r.time > 0 ? r.time : null),
  flags: (r) => lapFlags(r).join(" "),
  driver: (r) => (typeof r.driver === "string" ? r.driver : null),
  stint: (r) => r.stint,
  position: (r) => (isNum(r.position) && r.position > 0 ? r.position : null),
  fuel_used: (r) => r.fuel_used,
  tyres: (r) => (hottest(r.tyre_temp_avg) || {}).value,
  brake: (r) => (hottest(r.brake_temp_max) || {}).value,
};
export const SORT_KEYS = Object.keys(SORT_VALUES);

// Sorted copy; ties keep stream order (lap, then seq) so the table never jumps about.
export function sortLapRows(rows, key, descending) {
  const value = SORT_VALUES[key] || SORT_VALUES.lap;
  const known = (v) => v !== null && v !== undefined && (typeof v === "string" || isNum(v));
  return rows
    .map((r, i) => ({ r, i, v: value(r.row) }))
    .sort((a, b) => {
      const ka = known(a.v);
      const kb = known(b.v);
      if (ka !== kb) return ka ? -1 : 1;
      let d = 0;
      if (ka) d = typeof a.v === "string" ? a.v.localeCompare(b.v) : a.v - b.v;
      if (descending) d = -d;
      return d || (descending ? b.i - a.i : a.i - b.i);
    })
    .map((x) => x.r);
}

const COLUMNS = [
  ["lap", "Lap"], ["time", "Time"], ["flags", "Flags"], ["driver", "Driver"], ["stint", "Stint"],
  ["position", "Pos"], ["fuel_used", "Fuel"], ["tyres", "Tyre avg FL/FR/RL/RR"], ["brake", "Brake max"],
];

function td(text, className) {
  const cell = document.createElement("td");
  cell.textContent = text;
  if (className) cell.className = className;
  return cell;
}

function timeCell({ row, stintBest, driverBest }) {
  const cell = td(fmtLapTime(isNum(row.time) && row.time > 0 ? row.time : null), "num");
  // A symbol and words for the bests, not only a colour.
  if (driverBest) cell.append(bestMark("driver-best", " ★", "driver best"));
  if (stintBest) cell.append(bestMark("stint-best", " ◆", "stint best"));
  return cell;
}

function bestMark(kind, symbol, words) {
  const mark = document.createElement("span");
  mark.className = `best-mark ${kind}`;
  mark.textContent = symbol;
  mark.title = words;
  mark.setAttribute("aria-label", words);
  return mark;
}

function flagsCell(row) {
  const cell = td("");
  for (const flag of lapFlags(row)) {
    const badge = document.createElement("span");
    badge.className = `flag flag-${flag.toLowerCase()}`;
    badge.textContent = flag;
    cell.append(badge, " ");
  }
  return cell;
}

function tyresText(row) {
  const avg = row.tyre_temp_avg || {};
  const parts = CORNERS.map((c) => (isNum(avg[c]) && avg[c] > -273 ? bareTemp(avg[c]) : DASH));
  return parts.every((p) => p === DASH) ? DASH : parts.join("/");
}

function brakeText(row) {
  const top = hottest(row.brake_temp_max);
  return top ? `${bareTemp(top.value)} ${top.corner.toUpperCase()}` : DASH;
}

export class LapTable {
  constructor(table, { sortKey = "lap", descending = true } = {}) {
    this.table = table;
    this.sortKey = sortKey;
    this.descending = descending;
    this.rows = [];
    this.shown = "";
    const head = document.createElement("thead");
    const tr = document.createElement("tr");
    this.headers = {};
    for (const [key, label] of COLUMNS) {
      const th = document.createElement("th");
      th.scope = "col";
      th.dataset.key = key;
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = label;
      button.addEventListener("click", () => this.sortBy(key));
      th.append(button);
      tr.append(th);
      this.headers[key] = th;
    }
    head.append(tr);
    this.body = document.createElement("tbody");
    table.replaceChildren(head, this.body);
  }

  sortBy(key) {
    if (this.sortKey === key) this.descending = !this.descending;
    else {
      this.sortKey = key;
      this.descending = key === "lap"; // newest first; other columns smallest first
    }
    this.shown = "";
    this.render(this.rows);
  }

  // laps: the server's lap rows to show (all of them, or those up to a time-shifted moment).
  render(laps) {
    this.rows = laps;
    // Redraw only when the rows, the sort or the units changed (telemetry arrives many times a lap).
    const signature = `${this.sortKey}|${this.descending}|${tempUnit()}|${fmtLitres(1)}|${laps.length}|${laps.map((r) => `${r.lap}@${r.seq}:${r.clean}${r.in_lap}${r.out_lap}${r.pit_lap}`).join(",")}`;
    if (signature === this.shown) return;
    this.shown = signature;
    for (const [key, th] of Object.entries(this.headers)) {
      if (key === this.sortKey) th.setAttribute("aria-sort", this.descending ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
    }
    this.headers.tyres.querySelector("button").textContent = `Tyre avg ${tempUnit()} FL/FR/RL/RR`;
    this.headers.brake.querySelector("button").textContent = `Brake max ${tempUnit()}`;
    const out = [];
    for (const entry of sortLapRows(lapTableRows(laps), this.sortKey, this.descending)) {
      const { row } = entry;
      const tr = document.createElement("tr");
      tr.dataset.lap = String(row.lap);
      tr.dataset.seq = String(row.seq);
      if (entry.stintBest) tr.classList.add("stint-best");
      if (entry.driverBest) tr.classList.add("driver-best");
      if (row.clean !== true) tr.classList.add("not-clean");
      tr.append(
        td(isNum(row.lap) ? String(row.lap) : DASH, "num"),
        timeCell(entry),
        flagsCell(row),
        td(typeof row.driver === "string" && row.driver ? row.driver : DASH),
        td(isNum(row.stint) ? String(row.stint) : DASH, "num"),
        td(isNum(row.position) && row.position > 0 ? `P${row.position}` : DASH, "num"),
        td(fmtLitres(row.fuel_used, 2), "num"),
        td(tyresText(row), "num"),
        td(brakeText(row), "num"),
      );
      out.push(tr);
    }
    this.body.replaceChildren(...out);
  }
}

// The stints to list: the server's summaries (race_tables: a join or a seek), plus a bare row for
// each stint the lap rows name that no summary covers yet. The race events carry no stint
// summary, and the page never works one out itself: its figures wait for the next race_tables.
export function stintRows(stints, laps) {
  const known = new Set(stints.map((s) => s.stint));
  const extra = new Map();
  for (const row of laps) {
    if (!isNum(row.stint) || known.has(row.stint) || extra.has(row.stint)) continue;
    extra.set(row.stint, { stint: row.stint, driver: row.driver, pending: true });
  }
  return [...stints, ...extra.values()];
}

// The stint table: one row per stint as the server summed it up.
export function renderStintTable(body, stints, laps = []) {
  const out = [];
  for (const s of stintRows(stints, laps)) {
    const tr = document.createElement("tr");
    tr.dataset.stint = String(s.stint);
    const count = isNum(s.laps) ? `${s.laps}${isNum(s.clean_laps) ? ` (${s.clean_laps} clean)` : ""}` : DASH;
    if (s.pending) {
      tr.className = "pending";
      tr.title = "the server sums a stint up in the tables it sends on joining: reload for its figures";
    }
    tr.append(
      td(isNum(s.stint) ? String(s.stint) : DASH, "num"),
      td(typeof s.driver === "string" && s.driver ? s.driver : DASH),
      td(count, "num"),
      td(fmtLapTime(s.best_lap), "num"),
      td(fmtLapTime(s.average_lap), "num"),
      td(fmtLitres(s.fuel_per_lap, 2), "num"),
    );
    out.push(tr);
  }
  body.replaceChildren(...out);
}
