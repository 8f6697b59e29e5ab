// The server's race model of this session, as the page last heard it: lap rows, stints, pit
// stops, driver and setup changes, alerts, the strategy and the car's state. The server works
// them out once from the complete stream (racedash/race/model.py); the page holds only a window
// of frames (and after a seek, a late join, a speedup or an outage, not every one), so it does
// no lap or fuel arithmetic of its own: it keeps, merges and picks from what the server sent.
//
// Fed by `race_tables` (replace: a join, a seek), the race events (`lap_completed`, `pit_stop`,
// `driver_change`, `setup_change`, `alert`: apply) and each `telemetry_update`'s `race` object
// (noteFrame). Pure: no DOM, no socket, tested in the browser (tests/test_ui_logic.py).

import { isNum } from "./format.js";

export const RACE_EVENTS = ["lap_completed", "pit_stop", "driver_change", "setup_change", "alert"];

// What telemetry_update's `race` object carries; race_tables' strategy has these too.
const LIVE_FIELDS = ["stint", "fuel_per_lap", "laps_left", "time_left", "box_by_lap"];

// How a row of each table is told apart from another one (the seq of the frame that made it,
// plus what can differ between rows one frame made).
const KEYS = {
  laps: (r) => `${r.lap}@${r.seq}`,
  pit_stops: (r) => `${r.number}@${r.seq}`,
  driver_changes: (r) => `${r.from}>${r.to}@${r.seq}`,
  setup_changes: (r) => `@${r.seq}`,
  alerts: (r) => `${r.kind}|${r.corner}|${r.t}@${r.seq}`,
};

const isRow = (r) => r !== null && typeof r === "object" && isNum(r.seq);

function rows(value) {
  return Array.isArray(value) ? value.filter(isRow) : [];
}

// Replaces the row with the same key (an event the page already has: a rejoin's missed events,
// a pit stop's amended in-lap), else inserts the row in stream order: after every row of a frame
// up to its own. The newest row (the usual case) simply goes at the end.
function upsert(list, row, key) {
  const k = key(row);
  for (let i = list.length - 1; i >= 0; i--) {
    // From the end: a row the page already has is nearly always a recent one.
    if (key(list[i]) === k) {
      list[i] = row;
      return;
    }
  }
  let at = list.length;
  while (at > 0 && list[at - 1].seq > row.seq) at -= 1;
  list.splice(at, 0, row);
}

export class RaceTables {
  constructor() {
    this.clear();
  }

  clear() {
    this.seq = null; // the last frame the tables cover
    this.tables = { laps: [], stints: [], pit_stops: [], driver_changes: [], setup_changes: [], alerts: [] };
    this.plan = {}; // the server's strategy: race_tables' strategy, then each frame's race object
    this.carState = null; // "garage" | "pit_lane" | "in_pit" | "on_track" | "unknown" | null
  }

  // race_tables: everything the server derived up to its `seq`; replaces what was held.
  replace(tables) {
    if (!tables || typeof tables !== "object") return;
    this.clear();
    this.seq = isNum(tables.seq) ? tables.seq : null;
    for (const name of Object.keys(KEYS)) this.tables[name] = rows(tables[name]);
    this.tables.stints = Array.isArray(tables.stints) ? tables.stints.filter((s) => s && typeof s === "object") : [];
    if (tables.strategy && typeof tables.strategy === "object") this.plan = { ...tables.strategy };
    this.carState = typeof tables.car_state === "string" ? tables.car_state : null;
  }

  // One race event; returns whether anything changed.
  apply(event, data) {
    if (!data || typeof data !== "object") return false;
    if (event === "lap_completed") {
      if (!isRow(data.lap)) return false;
      upsert(this.tables.laps, data.lap, KEYS.laps);
      this._stints(data.stints);
    } else if (event === "pit_stop") {
      if (!isRow(data)) return false;
      const { amended_laps: amended, stints, session_id: _id, ...stop } = data;
      upsert(this.tables.pit_stops, stop, KEYS.pit_stops);
      // The stop showed that an earlier lap was the in-lap: its flags changed.
      for (const lap of rows(amended)) upsert(this.tables.laps, lap, KEYS.laps);
      this._stints(stints);
    } else if (event === "driver_change" || event === "setup_change" || event === "alert") {
      if (!isRow(data)) return false;
      const { session_id: _id, ...row } = data;
      const table = `${event}s`;
      upsert(this.tables[table], row, KEYS[table]);
    } else {
      return false;
    }
    if (isNum(data.seq) && (this.seq === null || data.seq > this.seq)) this.seq = data.seq;
    return true;
  }

  // Lap and pit-stop events carry the stint table as it stands (the server's, not worked out here).
  _stints(stints) {
    if (Array.isArray(stints)) this.tables.stints = stints.filter((s) => s && typeof s === "object");
  }

  // telemetry_update's `race` object: the strategy and car state as of that frame.
  noteFrame(race) {
    if (!race || typeof race !== "object") return;
    for (const name of LIVE_FIELDS) if (name in race) this.plan[name] = race[name];
    if ("car_state" in race) this.carState = typeof race.car_state === "string" ? race.car_state : null;
  }

  // The current strategy and car state as one `race` object (what a frame would carry).
  get summary() {
    const summary = { car_state: this.carState };
    for (const name of LIVE_FIELDS) summary[name] = name in this.plan ? this.plan[name] : null;
    return summary;
  }

  get laps() {
    return this.tables.laps;
  }

  get stints() {
    return this.tables.stints;
  }

  get pitStops() {
    return this.tables.pit_stops;
  }

  get driverChanges() {
    return this.tables.driver_changes;
  }

  get setupChanges() {
    return this.tables.setup_changes;
  }

  get alerts() {
    return this.tables.alerts;
  }

  get strategy() {
    return this.plan;
  }

  get lastLap() {
    return lastLapTime(this.laps);
  }

  get bestLap() {
    return bestLapTime(this.laps);
  }
}

// The time of the last lap completed (null when the server could not time it).
export function lastLapTime(laps) {
  const last = laps[laps.length - 1];
  return last && isNum(last.time) && last.time > 0 ? last.time : null;
}

// The best clean lap: in-, out- and pit laps and laps spanning a data gap never count.
export function bestLapTime(laps) {
  let best = null;
  for (const lap of laps) {
    if (lap.clean === true && isNum(lap.time) && lap.time > 0 && (best === null || lap.time < best)) best = lap.time;
  }
  return best;
}

// The lap rows as they stood at time t (epoch s, the monitor's clock like the rows' end_t):
// the rows up to the last one that ended by then, with the laps listed together with it (laps
// driven inside a data gap carry no end_t and come with the row of the frame after the gap).
export function lapsUntil(laps, t) {
  let end = -1;
  for (let i = 0; i < laps.length; i++) {
    if (isNum(laps[i].end_t) && laps[i].end_t <= t) end = i;
  }
  if (end < 0) return [];
  const seq = laps[end].seq;
  while (end + 1 < laps.length && !isNum(laps[end + 1].end_t) && laps[end + 1].seq === seq) end += 1;
  return laps.slice(0, end + 1);
}

// Where each lap began on the timeline: lap N+1 begins where the server says lap N ended. One
// frame may end several laps (the first frame after a data gap also ends the laps driven inside
// it, listed with its seq and no end_t): the lap after the last of them began there.
export function lapStarts(laps) {
  const starts = [];
  let frameT = null; // the end_t of the rows of the frame being read
  for (let i = 0; i < laps.length; i++) {
    const row = laps[i];
    if (i === 0 || laps[i - 1].seq !== row.seq) frameT = null;
    if (isNum(row.end_t)) frameT = row.end_t;
    const next = laps[i + 1];
    if (next && next.seq === row.seq) continue;
    if (isNum(row.lap) && frameT !== null) starts.push({ lap: row.lap + 1, t: frameT });
  }
  return starts;
}

// The badge for the car's state, or null when there is none to show.
export function carStateBadge(carState) {
  if (carState === "in_pit") return "IN PIT";
  if (carState === "pit_lane") return "PIT LANE";
  return null;
}

// Low fuel: fewer laps left (the server's figure) than the threshold, or (before the server
// has measured a lap) less than 10 % of the tank.
export function isLowFuel(fuel, capacity, lapsLeft, thresholdLaps) {
  if (!isNum(fuel) || fuel < 0) return false;
  if (lapsLeft !== null && isNum(lapsLeft)) return lapsLeft < thresholdLaps;
  return isNum(capacity) && capacity > 0 && fuel / capacity < 0.1;
}
