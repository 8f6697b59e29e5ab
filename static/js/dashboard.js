// The session dashboard: joins a live session or a replay room and shows it.
// Wire contract: emit `join_session` {session_id, last_seq?} (ack); receive `setup_update`,
// `telemetry_update` (both may carry `seq`; telemetry may carry `race`), optionally
// `telemetry_history` {frames}, the server's race model (`race_tables`, then `lap_completed`,
// `pit_stop`, `driver_change`, `setup_change`, `alert`) and, in a replay room, `replay_state`;
// control a replay with `replay_control` (ack). Lap times, fuel per lap and laps or time left
// are the server's (race.js): the page shows them and does no lap or fuel arithmetic.

import {
  DASH, brakeCelsius, classify, classifyWear, fmtClock, fmtDuration, fmtGear, fmtInt, fmtLapTime,
  fmtLitres, fmtPosition, fmtPressure, fmtTemp, fmtText, fmtWear, isNum, knownPressure, knownTemp,
  knownWaterTemp, knownWear, parseTimestamp,
} from "./format.js";
import { RACE_EVENTS, RaceTables, bestLapTime, carStateBadge, isLowFuel, lapStarts, lapsUntil, lastLapTime } from "./race.js";
import { FrameStore } from "./store.js";
import { cornerOf, diffSetups, garageValues, settingLabel, setupSheet } from "./setup.js";
import { connectionStatus } from "./connection.js";
import { Charts } from "./charts.js";
import { Transport } from "./transport.js";
import { LapTable, renderStintTable } from "./laptable.js";
import { feedEntries, renderFeed } from "./eventfeed.js";
import { bindShortcuts, fillHelp } from "./keys.js";
import { applyTheme, currentTheme, loadUnits, mirrorPrefs, saveUnits, setTheme } from "./prefs.js";

const root = document.getElementById("dashboard");
const sessionId = root.dataset.sessionId;
const config = JSON.parse(root.dataset.config || "{}");
const CORNERS = ["fl", "fr", "rl", "rr"];
const now = () => Date.now() / 1000;

const fields = {};
for (const el of root.querySelectorAll("[data-field]")) fields[el.dataset.field] = el;
const $ = (id) => document.getElementById(id);

// What a screen reader says for each value field, and for its window state (the colour's words;
// the page also shows ▼ ● ▲ beside coloured values, app.css).
const FIELD_LABELS = {
  driver: "Driver", car: "Car", track: "Track", session_type: "Session", position: "Position", lap: "Lap",
  current_lap: "Current lap time", last_lap: "Last lap time", best_lap: "Best lap time", fuel: "Fuel",
  fuel_pct: "Fuel, percent of the tank", fuel_per_lap: "Fuel per lap", fuel_laps_left: "Laps of fuel left",
  fuel_time_left: "Time of fuel left", box_by_lap: "Box by lap", water_temp: "Water temperature",
  track_temp: "Track temperature", ambient_temp: "Ambient temperature", speed: "Speed", gear: "Gear", rpm: "RPM",
};
const CORNER_LABELS = { temp: "tyre temperature", pressure: "tyre pressure", wear: "tyre wear left", brake: "brake temperature" };
const STATE_WORDS = { cold: "below the window", ok: "in the window", hot: "above the window", warm: "getting low", unknown: "unknown" };

function fieldLabel(name) {
  if (FIELD_LABELS[name]) return FIELD_LABELS[name];
  const m = /^(temp|pressure|wear|brake)_(fl|fr|rl|rr)$/.exec(name);
  return m ? `${m[2].toUpperCase()} ${CORNER_LABELS[m[1]]}` : name;
}

function setField(name, text, state) {
  const el = fields[name];
  if (!el) return;
  if (el.textContent !== text) el.textContent = text;
  if (state !== undefined) {
    el.classList.remove("unknown", "cold", "ok", "hot", "warm");
    el.classList.add(state);
  }
  const label = `${fieldLabel(name)}: ${text || DASH}${state && state !== "unknown" ? `, ${STATE_WORDS[state]}` : ""}`;
  if (el.getAttribute("aria-label") !== label) el.setAttribute("aria-label", label);
}

// ---- state ------------------------------------------------------------------
const state = {
  replay: root.dataset.mode === "replay",
  connected: false,
  everConnected: false,
  lastDataAt: null,
  joining: false,
  buffered: [],
  setup: null, // {seq, timestamp, setup, at}
  setupSeqs: new Set(),
  setupBaselineNext: false,
  setupHistory: [], // {at, changes}
  latestChange: null,
  replayState: null,
  replayStateAt: 0,
  viewTime: null, // null: following live; else the time-shifted moment (epoch s)
  unknownSession: false, // the join found no data at all: no monitor has published yet
  batching: false, // while the page's inline state is applied: render once, after it
};
const store = new FrameStore(config.history_frames || 20000);
const race = new RaceTables();
const charts = new Charts({
  lapsEl: $("chart-laps"),
  fuelEl: $("chart-fuel"),
  tyresEl: $("chart-tyres"),
  brakesEl: $("chart-brakes"),
  pressuresEl: $("chart-pressures"),
});
const lapTable = new LapTable($("lap-table"));
const transport = new Transport($("transport"), {
  onScrub: scrubbed,
  onPlayPause: () => {
    const playing = state.replayState && state.replayState.status === "playing";
    control({ action: playing ? "pause" : "play" });
  },
  onSpeed: (speed) => control({ action: "speed", speed }),
  onJumpLap: jumpToLap,
  onGoLive: goLive,
  onPlayFromHere: playFromHere,
});

// The live session a time-shift was started from, when this page is that replay (see playFromHere).
const liveFrom = new URLSearchParams(window.location.hash.slice(1)).get("live");

// ---- socket -------------------------------------------------------------------
// Opened by connect(): at once, or once the page has shown the state it asked for (applyPageState).
let socket = null;
window.racedash = { socket, store, charts, race, state };

function connect() {
  // A websocket first (one handshake fewer than polling and upgrading); polling if it fails, e.g.
  // behind a proxy that does not pass websockets (tryAllTransports: the vendored client, 4.8).
  // Several processes: the page names the one writing the session (data-node), and the load balancer
  // sends the handshake there (docs/scaling.md), so its frames need not cross Redis to reach us.
  const query = root.dataset.node ? { node: root.dataset.node } : {};
  socket = io({ transports: ["websocket", "polling"], tryAllTransports: true, query });
  window.racedash.socket = socket;

  socket.on("connect", () => {
    state.connected = true;
    state.everConnected = true;
    join(false);
    refreshBadge();
  });

  socket.on("disconnect", (reason) => {
    state.connected = false;
    refreshBadge();
    // A server-side disconnect is not retried by socket.io itself.
    if (reason === "io server disconnect") setTimeout(() => socket.connect(), 1000);
  });

  socket.on("telemetry_update", (m) => receive("telemetry", m));
  socket.on("setup_update", (m) => receive("setup", m));
  socket.on("telemetry_history", (m) => receive("history", m));
  socket.on("race_tables", (m) => receive("race_tables", m));
  for (const name of RACE_EVENTS) socket.on(name, (m) => receive(name, m));
  socket.on("replay_state", (m) => {
    if (!m || typeof m !== "object") return;
    if (m.session_id && m.session_id !== sessionId) return;
    becomeReplay();
    applyReplayState(m);
  });
}

function join(afterReset) {
  const request = { session_id: sessionId };
  const lastSeq = store.lastSeq;
  if (afterReset) request.last_seq = 0;
  else if (!state.replay && lastSeq !== null) request.last_seq = lastSeq;
  state.joining = true;
  socket.timeout(10000).emit("join_session", request, (err, ack) => {
    state.joining = false;
    const errorBox = $("join-error");
    if (err || !ack || !ack.ok) {
      errorBox.hidden = false;
      errorBox.textContent = `Could not join: ${err ? "no answer from the server" : (ack && ack.message) || "unknown error"}`;
    } else {
      errorBox.hidden = true;
      // A session id nobody has published to (yet): say so rather than "waiting for data".
      state.unknownSession = ack.replay !== true && ack.has_setup === false && ack.has_telemetry === false
        && store.last === null;
      if (ack.replay === true) {
        becomeReplay();
        if (ack.state && typeof ack.state === "object") applyReplayState(ack.state);
      } else if (!afterReset && request.last_seq !== undefined && isNum(ack.seq) && ack.seq < request.last_seq) {
        // The server's sequence restarted (it restarted without our history): number
        // what follows as a new epoch and ask for everything it has.
        store.newEpoch();
        state.setupSeqs.clear();
        flushBuffer();
        join(true);
        return;
      }
    }
    flushBuffer();
  });
}

// Frames arriving while a join is answered are held until its ack, so that a sequence
// restart is detected before they are numbered.
function receive(kind, message) {
  if (!message || typeof message !== "object") return;
  if (message.session_id && message.session_id !== sessionId) return;
  state.lastDataAt = now();
  if (state.joining) {
    state.buffered.push([kind, message]);
    return;
  }
  handle(kind, message);
}

function flushBuffer() {
  const pending = state.buffered;
  state.buffered = [];
  for (const [kind, message] of pending) handle(kind, message);
}

function handle(kind, message) {
  if (kind === "telemetry" || kind === "setup") state.unknownSession = false;
  if (kind === "telemetry") onTelemetry(message);
  else if (kind === "setup") onSetup(message);
  else if (kind === "history") onHistory(message);
  else if (kind === "race_tables") onRaceTables(message);
  else if (RACE_EVENTS.includes(kind)) onRaceEvent(kind, message);
}

function applyReplayState(m) {
  if (state.replayState && isNum(m.position) && Math.abs(m.position - replayPosition()) > 2) {
    // A seek: the setup that follows is the one at the new point, not a change.
    state.setupBaselineNext = true;
  }
  state.replayState = m;
  state.replayStateAt = now();
  state.lastDataAt = now();
  // A time-shift of a live session: its recording is still being written.
  // A time-shift's room is never told the live session's id (its viewers' secret); the page that
  // started it passes the id on in the URL fragment, which never reaches a server or a log.
  const named = typeof m.recording_id === "string" ? m.recording_id : liveFrom;
  const liveId = m.live === true && named ? named : null;
  transport.setLiveLink(liveId ? `/dashboard/${encodeURIComponent(liveId)}` : null);
  drawTimeline();
  refreshBadge();
}

// ---- frames -------------------------------------------------------------------
function onTelemetry(message) {
  if (!message.telemetry || typeof message.telemetry !== "object") return;
  const summary = message.race && typeof message.race === "object" ? message.race : null;
  const result = store.add(
    { seq: message.seq, t: now(), telemetry: message.telemetry, race: summary },
    { replay: state.replay },
  );
  if (result === "duplicate") return;
  if (result === "rewind") state.setupBaselineNext = true;
  // A late frame slotted in before the newest one does not speak for now. Frames without
  // `race` (a join's frames, a replay's) leave the last known strategy as it is.
  if (result !== "insert") race.noteFrame(summary);
  dataChanged();
}

function onHistory(message) {
  const frames = Array.isArray(message.frames) ? message.frames : [];
  const valid = frames.filter((f) => f && typeof f === "object" && f.telemetry && typeof f.telemetry === "object");
  if (!valid.length) return;
  if (state.replay) {
    store.replace(valid.map((f) => ({ seq: f.seq, t: f.t, telemetry: f.telemetry })));
  } else {
    for (const f of valid) store.add({ seq: f.seq, t: f.t, telemetry: f.telemetry });
  }
  dataChanged();
}

// ---- the server's race model -------------------------------------------------------
function onRaceTables(message) {
  race.replace(message);
  // The join's last frame came without `race`: these tables speak for it (time-shift reads it).
  const last = store.last;
  if (last && !last.race && isNum(message.seq) && last.seq === message.seq) last.race = race.summary;
  dataChanged();
}

function onRaceEvent(kind, message) {
  if (race.apply(kind, message)) dataChanged();
}

function dataChanged() {
  if (state.batching) return; // the page's inline state: rendered once, after it
  renderTelemetry();
  charts.update(store, race);
  renderFeedCard();
  drawTimeline();
  refreshBadge();
}

// ---- telemetry view ------------------------------------------------------------
function shownFrame() {
  if (state.viewTime !== null && !state.replay) return store.at(state.viewTime);
  return store.last;
}

// The server's lap rows and strategy as they stood at the shown frame: following live, the
// latest; time-shifted, the rows that had ended by then and the `race` object of that frame (or
// of the last one before it that had one; null when the page holds none that early).
function raceAt(frame) {
  if (frame === store.last) return { laps: race.laps, summary: race.summary };
  let summary = null;
  for (let i = store.indexOf(frame); i >= 0 && summary === null; i--) summary = store.frames[i].race || null;
  return { laps: lapsUntil(race.laps, frame.t), summary };
}

function renderTelemetry() {
  const frame = shownFrame();
  const shifted = frame && state.viewTime !== null && !state.replay;
  charts.setMarker(shifted ? { t: frame.t, lap: isNum(frame.telemetry.lap) ? frame.telemetry.lap : null } : null);
  if (!frame) {
    renderTables(race.laps);
    return;
  }
  const tel = frame.telemetry;
  const then = raceAt(frame);
  setField("driver", fmtText(tel.player_name));
  setField("car", fmtText(tel.car_name));
  setField("track", fmtText(tel.track_name));
  setField("session_type", fmtText(tel.session_type));
  setField("position", fmtPosition(tel.position));
  setField("lap", isNum(tel.lap) ? String(tel.lap) : DASH);
  setField("current_lap", fmtLapTime(tel.lap_time));
  setField("last_lap", fmtLapTime(lastLapTime(then.laps)));
  setField("best_lap", fmtLapTime(bestLapTime(then.laps)));
  renderFuel(tel, then.summary);
  renderStrategy(then.summary, frame === store.last);
  renderCarState(then.summary);
  renderTables(then.laps);
  renderCorners(tel);
  const water = knownWaterTemp(tel.engine_water_temp);
  setField("water_temp", fmtTemp(tel.engine_water_temp, knownWaterTemp), classify(water, config.water_temp));
  setField("track_temp", fmtTemp(tel.track_temp));
  setField("ambient_temp", fmtTemp(tel.ambient_temp));
  setField("speed", isNum(tel.speed) && tel.speed >= 0 ? `${Math.round(tel.speed)} km/h` : DASH);
  setField("gear", fmtGear(tel.gear));
  setField("rpm", isNum(tel.rpm) && tel.rpm > 0 ? fmtInt(tel.rpm) : DASH);
  document.title = `${fmtText(tel.player_name)} · ${state.replay ? "replay" : "live"} · racedash`;
}

const AFTER_FIRST_LAP = "after the first full lap";

// summary: the server's strategy as of the shown frame (telemetry_update's `race`), or null.
function renderFuel(tel, summary) {
  const fuel = isNum(tel.fuel) && tel.fuel >= 0 ? tel.fuel : null;
  const capacity = isNum(tel.fuel_capacity) && tel.fuel_capacity > 0 ? tel.fuel_capacity : null;
  const pct = fuel !== null && capacity !== null ? Math.min(100, (fuel / capacity) * 100) : null;
  setField("fuel", fmtLitres(fuel));
  setField("fuel_pct", pct === null ? "" : `${Math.round(pct)} %`);
  const plan = summary || {};
  const known = (v) => (isNum(v) ? v : null);
  const perLap = known(plan.fuel_per_lap);
  const lapsLeft = known(plan.laps_left);
  const timeLeft = known(plan.time_left);
  // The server says null until it has a whole clean lap to go by: say so, not a bare dash. With
  // no strategy at all for the shown moment (a time-shift before any the page holds), a dash.
  const waiting = fuel === null || summary === null ? DASH : AFTER_FIRST_LAP;
  setField("fuel_per_lap", perLap === null ? waiting : fmtLitres(perLap, 2));
  setField("fuel_laps_left", lapsLeft === null ? waiting : lapsLeft.toFixed(1));
  setField("fuel_time_left", timeLeft === null ? waiting : fmtDuration(timeLeft));
  const low = isLowFuel(fuel, capacity, lapsLeft, config.low_fuel_laps || 2);
  $("low-fuel").hidden = !low;
  const fill = $("fuel-fill");
  fill.style.width = `${pct === null ? 0 : pct}%`;
  fill.classList.toggle("low", low);
  const bar = $("fuel-bar");
  bar.setAttribute("aria-valuenow", pct === null ? "" : String(Math.round(pct)));
}

// The rest of the server's strategy: the last lap to box by, what the figures rest on, and fuel to
// the finish for a target the user types, which the server works out (`race_strategy`): the page
// never multiplies the figures itself.
function renderStrategy(summary, latest) {
  const plan = summary || {};
  setField("box_by_lap", isNum(plan.box_by_lap) ? `lap ${plan.box_by_lap}` : DASH);
  // The count of clean laps comes only with race_tables (not with each frame): no count, so that
  // a live page never shows an out-of-date one.
  setField("strategy_basis", latest ? "Per lap and pace: the server's, from its recent clean laps." : "");
  const target = typedTarget();
  const result = $("target-result");
  let text = "";
  if (target !== null) {
    const answer = state.targetAnswer;
    if (state.replay) {
      text = "Fuel to a target: for live sessions.";
    } else if (!answer || answer.target !== target) {
      text = "Asking the server…";
    } else if (!isNum(answer.fuel_to_target)) {
      text = "The server has no fuel per lap yet: after the first full lap.";
    } else {
      const need = answer.fuel_to_target;
      text = need >= 0 ? `Add ${fmtLitres(need)} for ${target} more laps.` : `${fmtLitres(-need)} to spare over ${target} more laps.`;
    }
  }
  if (result.textContent !== text) result.textContent = text;
}

function typedTarget() {
  const typed = $("target-laps").value.trim();
  const target = typed === "" ? null : Number(typed);
  return target !== null && Number.isInteger(target) && target >= 1 ? target : null;
}

// Asks the server for the fuel to the typed target: when it changes, and again every few
// seconds while a target is set (fuel on board and fuel per lap move on).
function askTarget() {
  const target = typedTarget();
  if (target === null || state.replay || !state.connected || !socket) return;
  socket.timeout(5000).emit("race_strategy", { session_id: sessionId, target_laps: target }, (err, ack) => {
    if (err || !ack || !ack.ok || !ack.strategy) return;
    if (typedTarget() !== target) return;  // the user typed on meanwhile
    state.targetAnswer = { target, fuel_to_target: ack.strategy.fuel_to_target };
    renderTelemetry();
  });
}
$("target-laps").addEventListener("input", () => {
  state.targetAnswer = null;
  renderTelemetry();
  askTarget();
});
setInterval(askTarget, 5000);

// ---- laps, stints and events: the server's race tables ------------------------------------
// laps: the rows as of the shown moment (all of them unless time-shifted).
function renderTables(laps) {
  lapTable.render(laps);
  renderStintTable($("stint-table").tBodies[0], race.stints, race.laps);
}

// The readable name of a setup key: the sheet's label (setup.js), from the setup shown if it has it.
function setupKeyLabel(key) {
  const entry = state.setup ? garageValues(state.setup.setup)[key] : undefined;
  const corner = cornerOf(key);
  return settingLabel(key, entry || {}) + (corner ? ` ${corner}` : "");
}

function renderFeedCard() {
  const entries = feedEntries(race, setupKeyLabel);
  state.feed = entries;
  const canJump = (e) => eventPosition(e.row) !== null;
  // Rebuilt only when it changed: frames come many times a second, and a button under the
  // pointer must not be replaced between press and release.
  const signature = `${fmtLitres(1)}|${entries.map((e) => `${e.kind}@${e.row.seq}:${e.details.length}:${canJump(e)}`).join(",")}`;
  if (signature === state.feedShown) return;
  state.feedShown = signature;
  $("feed-empty").hidden = entries.length > 0;
  renderFeed($("event-feed"), entries, { canJump, onJump: (e) => jumpToEvent(e.row) });
}

// Where a race event lies on the timeline, in the transport's seconds (null: not on it).
// Replay: positions are seconds of the recording, events carry the monitor's clock (`t`); both
// advance together, so the event lies as far into the replay's start of its lap as it lies after
// the server's start of that lap (lapStarts). Without the server's lap start (lap 1), the lap's
// start. Live: the timeline is the frames' monitor clock, like `t`.
function eventPosition(row) {
  if (!row || !isNum(row.lap)) return null;
  if (state.replay) {
    const rs = state.replayState;
    const laps = rs && Array.isArray(rs.laps) ? rs.laps : [];
    const start = laps.find((l) => l && l.lap === row.lap && isNum(l.t));
    if (!start) return null;
    const next = laps.find((l) => l && l.lap === row.lap + 1 && isNum(l.t));
    const served = lapStarts(race.laps).find((l) => l.lap === row.lap);
    if (!served || !isNum(row.t)) return start.t;
    const end = next ? next.t : isNum(rs.duration) ? rs.duration : Infinity;
    return Math.min(end, Math.max(start.t, start.t + (row.t - served.t)));
  }
  const first = store.frames[0];
  const last = store.last;
  if (!first || !last || !isNum(row.t) || row.t < first.t) return null;
  return Math.min(row.t, last.t) - first.t;
}

function jumpToEvent(row) {
  const position = eventPosition(row);
  if (position === null) return;
  if (state.replay) control({ action: "seek", time: position });
  else scrubbed(position, true);
}

function eventMarkers() {
  const out = [];
  for (const entry of state.feed || []) {
    const t = eventPosition(entry.row);
    if (t !== null) out.push({ t, kind: entry.kind, label: `${entry.label}: ${entry.title}`, onJump: () => jumpToEvent(entry.row) });
  }
  return out;
}

// IN PIT / PIT LANE while the server's race model says the car is there; hidden otherwise.
function renderCarState(summary) {
  const text = carStateBadge(summary ? summary.car_state : null);
  const badge = $("car-state");
  badge.hidden = text === null;
  if (badge.textContent !== (text || "")) badge.textContent = text || "";
  badge.dataset.state = summary && typeof summary.car_state === "string" ? summary.car_state : "";
}

function renderCorners(tel) {
  const temps = tel.tire_temps || {};
  const pressures = tel.tire_pressures || {};
  const wear = tel.tire_wear || {};
  const brakes = tel.brake_temps || {};
  for (const c of CORNERS) {
    setField(`temp_${c}`, fmtTemp(temps[c]), classify(knownTemp(temps[c]), config.tyre_temp));
    setField(`pressure_${c}`, fmtPressure(pressures[c]), classify(knownPressure(pressures[c]), config.tyre_pressure));
    setField(`wear_${c}`, fmtWear(wear[c]), classifyWear(knownWear(wear[c]), config.tyre_wear || [20, 40]));
    // Brakes come in Kelvin; the display and the brake window are °C.
    setField(`brake_${c}`, fmtTemp(brakes[c], brakeCelsius), classify(brakeCelsius(brakes[c]), config.brake_temp));
  }
}

// ---- setup sheet -----------------------------------------------------------------
function onSetup(message) {
  // Live: a rejoin may re-send a setup already shown. A replay re-sends the setup at every
  // seek on purpose, and an unchanged one simply diffs to nothing.
  if (isNum(message.seq) && !state.replay) {
    if (state.setupSeqs.has(message.seq)) return;
    state.setupSeqs.add(message.seq);
    store.noteSeq(message.seq);
  }
  const setup = message.setup && typeof message.setup === "object" ? message.setup : {};
  const at = parseTimestamp(message.timestamp) ?? now();
  const incoming = { seq: message.seq, timestamp: message.timestamp, setup, at };
  const hasValues = Object.keys(garageValues(setup)).length > 0;
  if (!hasValues) {
    // The game's setup API was unavailable: keep showing the last real setup.
    if (!state.setup) $("setup-summary").textContent = `The game sent no setup values (${fmtClock(at)}).`;
    return;
  }
  if (state.setup && !state.setupBaselineNext) {
    const changes = diffSetups(state.setup.setup, setup);
    if (changes.length) {
      state.latestChange = { at, changes };
      state.setupHistory.push(state.latestChange);
    }
  }
  state.setupBaselineNext = false;
  state.setup = incoming;
  if (!state.batching) renderSetup(); // the page's inline setups: the sheet is drawn once, after them
}

function renderSetup() {
  const current = state.setup;
  if (!current) return;
  const count = Object.keys(garageValues(current.setup)).length;
  $("setup-summary").textContent = `${count} settings · received ${fmtClock(current.at)}`;
  renderChangeBanner();
  renderHistory();
  renderSheet();
}

function renderChangeBanner() {
  const box = $("setup-change");
  const change = state.latestChange;
  box.hidden = !change;
  if (!change) return;
  const title = document.createElement("h3");
  title.textContent = `Setup changed at ${fmtClock(change.at)}: ${change.changes.length} setting${change.changes.length === 1 ? "" : "s"}`;
  const list = document.createElement("ul");
  for (const c of change.changes) list.append(changeItem(c));
  box.replaceChildren(title, list);
}

function changeItem(c) {
  const li = document.createElement("li");
  li.className = "change";
  li.dataset.key = c.key;
  const label = document.createElement("strong");
  label.textContent = `${c.label}: `;
  const oldV = document.createElement("span");
  oldV.className = "old";
  oldV.textContent = c.old;
  const newV = document.createElement("span");
  newV.className = "new";
  newV.textContent = c.new;
  li.append(label, oldV, " → ", newV);
  return li;
}

function renderHistory() {
  const list = $("setup-history");
  $("setup-history-count").textContent = String(state.setupHistory.length);
  const items = [];
  for (const entry of [...state.setupHistory].reverse()) {
    const li = document.createElement("li");
    const when = document.createElement("time");
    when.textContent = fmtClock(entry.at);
    const inner = document.createElement("ul");
    for (const c of entry.changes) inner.append(changeItem(c));
    li.append(when, inner);
    items.push(li);
  }
  list.replaceChildren(...items);
}

function renderSheet() {
  const showAll = $("setup-show-all").checked;
  const changed = new Map((state.latestChange ? state.latestChange.changes : []).map((c) => [c.key, c]));
  const sheet = setupSheet(state.setup.setup, { showAll });
  const parts = [];
  for (const group of sheet) {
    const section = document.createElement("section");
    section.className = "setup-group";
    const h = document.createElement("h3");
    h.textContent = group.group;
    section.append(h);
    if (group.rows.length) {
      const table = document.createElement("table");
      const body = document.createElement("tbody");
      for (const row of group.rows) {
        const tr = document.createElement("tr");
        tr.dataset.key = row.key;
        const th = document.createElement("th");
        th.scope = "row";
        th.textContent = row.label;
        tr.append(th, valueCell(row.key, row.value, changed));
        if (changed.has(row.key)) tr.classList.add("changed");
        body.append(tr);
      }
      table.append(body);
      section.append(table);
    }
    if (group.corners.length) {
      const table = document.createElement("table");
      table.className = "corners";
      const head = document.createElement("thead");
      const hr = document.createElement("tr");
      for (const name of ["", "FL", "FR", "RL", "RR"]) {
        const th = document.createElement("th");
        th.textContent = name;
        hr.append(th);
      }
      head.append(hr);
      const body = document.createElement("tbody");
      for (const row of group.corners) {
        const tr = document.createElement("tr");
        const th = document.createElement("th");
        th.scope = "row";
        th.textContent = row.label;
        tr.append(th);
        for (const corner of ["FL", "FR", "RL", "RR"]) {
          const cell = row.cells[corner];
          tr.append(cell ? valueCell(cell.key, cell.value, changed) : Object.assign(document.createElement("td"), { textContent: DASH }));
        }
        body.append(tr);
      }
      table.append(head, body);
      section.append(table);
    }
    parts.push(section);
  }
  $("setup-sheet").replaceChildren(...parts);
}

function valueCell(key, value, changed) {
  const td = document.createElement("td");
  td.dataset.key = key;
  const c = changed.get(key);
  if (c) {
    td.className = "changed";
    td.title = `changed at ${fmtClock(state.latestChange.at)}`;
    const oldV = document.createElement("span");
    oldV.className = "old";
    oldV.textContent = c.old;
    const newV = document.createElement("span");
    newV.className = "new";
    newV.textContent = c.new;
    td.append(oldV, " → ", newV);
  } else {
    td.textContent = value;
  }
  return td;
}

$("setup-show-all").addEventListener("change", () => { if (state.setup) renderSheet(); });

// ---- timeline: live time-shift and replay transport -------------------------------------
function becomeReplay() {
  if (state.replay && $("mode-badge").dataset.mode === "replay") return;
  state.replay = true;
  state.viewTime = null;
  const badge = $("mode-badge");
  badge.dataset.mode = "replay";
  badge.textContent = "REPLAY";
  badge.className = "badge mode-replay";
  $("shift-badge").hidden = true;
  transport.setReplayControls(true);
  $("keys-help-button").hidden = false;
}

function replayPosition() {
  const rs = state.replayState;
  if (!rs || !isNum(rs.position)) return 0;
  if (rs.status !== "playing") return rs.position;
  const speed = isNum(rs.speed) ? rs.speed : 1;
  const pos = rs.position + (now() - state.replayStateAt) * speed;
  return isNum(rs.duration) ? Math.min(rs.duration, pos) : pos;
}

// Lap markers of the live timeline, in seconds from the first frame the page holds: where the
// server's lap rows say each lap began (laps that began before that frame cannot be shown).
function liveLaps(first) {
  return lapStarts(race.laps)
    .filter((start) => start.t >= first.t)
    .map((start) => ({ lap: start.lap, t: start.t - first.t }));
}

function drawTimeline() {
  if (state.replay) {
    const rs = state.replayState;
    if (!rs) {
      transport.draw({ position: 0, duration: 0, laps: [], timeText: "waiting for the replay…" });
      return;
    }
    const position = replayPosition();
    const duration = isNum(rs.duration) ? rs.duration : 0;
    const laps = Array.isArray(rs.laps) ? rs.laps.filter((l) => l && isNum(l.lap) && isNum(l.t)) : [];
    const status = rs.status === "ended" || rs.status === "stopped" ? ` · ${rs.status}` : "";
    transport.draw({
      position,
      duration,
      laps,
      timeText: `${fmtDuration(position)} / ${fmtDuration(duration)}${status}`,
      playing: rs.status === "playing",
      speed: rs.speed,
    });
    transport.drawEvents(eventMarkers(), duration);
    return;
  }
  const first = store.frames[0];
  const last = store.last;
  if (!first || !last) {
    transport.draw({ position: 0, duration: 0, laps: [], timeText: "LIVE", live: true });
    return;
  }
  const duration = last.t - first.t;
  const shifted = state.viewTime !== null;
  const position = shifted ? state.viewTime - first.t : duration;
  const behind = last.t - (shifted ? state.viewTime : last.t);
  transport.draw({
    position,
    duration,
    laps: liveLaps(first),
    timeText: shifted ? `${fmtDuration(behind)} behind live` : `LIVE · ${fmtDuration(duration)} on record`,
    shifted,
    live: true,
  });
  transport.drawEvents(eventMarkers(), duration);
  const badge = $("shift-badge");
  badge.hidden = !shifted;
  badge.textContent = shifted ? `TIME-SHIFT −${fmtDuration(behind)}` : "";
}

function scrubbed(value, committed) {
  if (state.replay) {
    if (committed) control({ action: "seek", time: value });
    return;
  }
  const first = store.frames[0];
  const last = store.last;
  if (!first || !last) return;
  const t = first.t + value;
  state.viewTime = t >= last.t - 0.25 ? null : t;
  renderTelemetry();
  drawTimeline();
}

function jumpToLap(lap) {
  if (state.replay) {
    control({ action: "seek", lap });
    return;
  }
  const first = store.frames[0];
  const start = liveLaps(first || { t: 0 }).find((l) => l.lap === lap);
  if (!first || !start) return;
  scrubbed(start.t + 0.01, true);
}

function goLive() {
  state.viewTime = null;
  renderTelemetry();
  drawTimeline();
}

// The page holds a window of the session; the server's recording holds all of it. Replaying
// from the shown moment gives play, pause, speed and seek over the whole recording, following
// it as it grows. The moment is sent as what the TIME-SHIFT badge shows, seconds behind the
// latest frame, rather than as a time of day the device's clock may disagree on.
function playFromHere() {
  const last = store.last;
  if (state.viewTime === null || !last || !socket) return;
  const back = Math.max(0, last.t - state.viewTime);
  transport.status("");
  socket.timeout(10000).emit("timeshift_start", { session_id: sessionId, back }, (err, ack) => {
    if (err) transport.status("The server did not answer the time-shift request.");
    else if (!ack || !ack.ok) transport.status(`Time-shift refused: ${(ack && ack.message) || "unknown error"}`);
    else window.location.assign(`/dashboard/${encodeURIComponent(ack.replay_id)}#live=${encodeURIComponent(sessionId)}`);
  });
}

function control(command) {
  if (!socket) return;
  transport.status("");
  socket.timeout(5000).emit("replay_control", { replay_id: sessionId, ...command }, (err, ack) => {
    if (err) transport.status("The server did not answer the replay control.");
    else if (!ack || !ack.ok) transport.status(`Replay control refused: ${(ack && ack.message) || "unknown error"}`);
    else if (ack.state && typeof ack.state === "object") applyReplayState(ack.state);
  });
}

// ---- replay keyboard shortcuts ------------------------------------------------------
const SPEEDS = [0.25, 0.5, 1, 2, 4, 8, 16];

function toggleHelp(show) {
  const box = $("keys-help");
  box.hidden = show === undefined ? !box.hidden : !show;
  if (!box.hidden) $("keys-help-close").focus();
}

// A shortcut's intent (keys.js) as a replay control; returns whether it was used. Only in a
// replay room (a live page keeps the browser's keys), except the help.
function onShortcut(intent) {
  if (intent === "help") {
    toggleHelp();
    return true;
  }
  const rs = state.replayState;
  if (!state.replay || !rs) return false;
  const duration = isNum(rs.duration) ? rs.duration : 0;
  const position = replayPosition();
  const laps = (Array.isArray(rs.laps) ? rs.laps : []).filter((l) => l && isNum(l.lap) && isNum(l.t));
  const seekTo = (time) => control({ action: "seek", time: Math.min(duration, Math.max(0, time)) });
  if (intent === "playPause") control({ action: rs.status === "playing" ? "pause" : "play" });
  else if (intent === "back") seekTo(position - 5);
  else if (intent === "forward") seekTo(position + 5);
  else if (intent === "start") seekTo(0);
  else if (intent === "end") seekTo(duration);
  else if (intent === "prevLap" || intent === "nextLap") {
    // Previous: the start of the lap before the one under way (a second's grace, so that
    // pressing twice goes back twice); next: the next lap start after the position.
    const target = intent === "prevLap"
      ? [...laps].reverse().find((l) => l.t < position - 1)
      : laps.find((l) => l.t > position + 0.5);
    if (target) control({ action: "seek", lap: target.lap });
  } else if (intent === "slower" || intent === "faster") {
    const current = isNum(rs.speed) ? rs.speed : 1;
    let i = SPEEDS.findIndex((v) => v >= current);
    if (i < 0) i = SPEEDS.length - 1;
    const next = SPEEDS[Math.min(SPEEDS.length - 1, Math.max(0, intent === "faster" ? (SPEEDS[i] > current ? i : i + 1) : i - 1))];
    if (next !== current) control({ action: "speed", speed: next });
  } else return false;
  return true;
}

fillHelp($("keys-help-list"));
bindShortcuts(onShortcut);
$("keys-help-button").addEventListener("click", () => toggleHelp());
$("keys-help-close").addEventListener("click", () => toggleHelp(false));

// ---- preferences: theme and units ----------------------------------------------------
function showTheme(theme) {
  applyTheme(theme);
  const button = $("theme-toggle");
  button.textContent = theme === "dark" ? "Light" : "Dark";
  button.setAttribute("aria-pressed", String(theme === "dark"));
  button.setAttribute("aria-label", theme === "dark" ? "Switch to the light theme" : "Switch to the dark theme");
}

showTheme(currentTheme());
mirrorPrefs(); // choices made before the cookie existed, or in another of the server's pages
$("theme-toggle").addEventListener("click", () => {
  const theme = currentTheme() === "dark" ? "light" : "dark";
  setTheme(theme);
  showTheme(theme);
});

const unitSelects = { temp: $("unit-temp"), pressure: $("unit-pressure"), fuel: $("unit-fuel") };
{
  const units = loadUnits();
  for (const [name, select] of Object.entries(unitSelects)) {
    if (units[name]) select.value = units[name];
    select.addEventListener("change", () => {
      saveUnits(Object.fromEntries(Object.entries(unitSelects).map(([n, el]) => [n, el.value])));
      renderTelemetry();
      renderFeedCard();
      charts.update(store, race); // the charts plot in the display units too
    });
  }
}

// ---- connection badge ------------------------------------------------------------
// The server said the monitor disconnected (alert publisher_gone) and no frame came since.
function sessionEnded() {
  if (state.replay) return false;
  const gone = race.alerts.filter((a) => a.kind === "publisher_gone").pop();
  return Boolean(gone) && (store.lastSeq === null || gone.seq >= store.lastSeq);
}

function refreshBadge() {
  const paused = state.replay && state.replayState && state.replayState.status !== "playing";
  const status = connectionStatus({
    connected: state.connected,
    everConnected: state.everConnected,
    lastDataAt: state.lastDataAt,
    now: now(),
    staleAfter: config.stale_seconds || 5,
    paused,
    ended: sessionEnded(),
    unknownSession: state.unknownSession,
  });
  const badge = $("conn-badge");
  if (badge.textContent !== status.text) badge.textContent = status.text;
  badge.className = `badge conn-${status.state}`;
  badge.dataset.state = status.state;
  // Old values must not pass for current ones: grey them while the data is not fresh.
  const dim = ["reconnecting", "stale", "ended"].includes(status.state);
  $("main-grid").classList.toggle("dimmed", dim);
  root.querySelector(".kpis").classList.toggle("dimmed", dim);
  root.dataset.freshness = dim ? status.state : "fresh";
}

// ---- page load: the state the page asked for ------------------------------------------------
// A live session's page asks, while it is parsed, for what a join without last_seq sends (docs/ui.md,
// "Page load"), all as of one seq. The server wrote its latest values into the HTML
// (racedash/pagefields.py) and boot.js runs this module after they are on screen: it takes in the
// setups, latest telemetry and race tables at once (the same text in every field), then the setup
// sheet, telemetry_history and the socket after its own frame. The join asks only for what came after
// that seq (last_seq). Any failure here only means the join brings the same state.
async function pageState() {
  const url = root.dataset.stateUrl;
  if (!url) return null;
  let fetched = null;
  try {
    // As the page's <link rel=preload as=fetch crossorigin> asked for it, so the browser hands over that response.
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) return null;
    fetched = await response.json();
  } catch (err) {
    return null;
  }
  const valid = fetched && typeof fetched === "object" && fetched.session_id === sessionId && isNum(fetched.seq);
  return valid ? fetched : null;
}

function applyPageState(inline) {
  state.batching = true;
  try {
    for (const setup of Array.isArray(inline.setups) ? inline.setups : []) handle("setup", setup);
    if (inline.telemetry) handle("telemetry", inline.telemetry);
    if (inline.race_tables) handle("race_tables", inline.race_tables);
  } finally {
    state.batching = false;
  }
  store.noteSeq(inline.seq);
  state.lastDataAt = now(); // as when a join brings it
  dataChanged();
}

function applyPageHistory(inline) {
  if (inline.history) handle("history", inline.history);
  renderSetup();
}

// Runs fn once the browser has painted what the page shows now (after the next frame), or after
// 200 ms at the latest: a page opened in a background tab gets no animation frames.
function afterPaint(fn) {
  let done = false;
  const run = () => {
    if (done) return;
    done = true;
    fn();
  };
  requestAnimationFrame(() => setTimeout(run, 0));
  setTimeout(run, 200);
}

if (state.replay) becomeReplay();
drawTimeline();
afterPaint(() => charts.start()); // boot.js ran uPlot before this module
(state.replay ? Promise.resolve(null) : pageState()).then((inline) => {
  if (!inline) {
    connect();
    return;
  }
  applyPageState(inline);
  afterPaint(() => {
    applyPageHistory(inline);
    connect();
  });
});
setInterval(() => {
  refreshBadge();
  if (state.replay) drawTimeline();
}, 500);
