// Several cars side by side (/cars?ids=a,b[,c,d], team only). One Socket.IO connection joins
// each live session's room, as the dashboard does, and routes every message to its card by
// session_id. Only the server's figures are shown: the race model's laps (race_tables, then
// lap_completed / pit_stop) and each frame's `race` object; no lap or fuel arithmetic here.

import { connectionStatus } from "./connection.js";
import { DASH, fmtLapTime, fmtLitres, fmtPosition, fmtTemp, fmtText, isNum } from "./format.js";
import { RACE_EVENTS, RaceTables, carStateBadge } from "./race.js";

const root = document.getElementById("cars");
const staleAfter = Number(root.dataset.staleSeconds) || 5;
const now = () => Date.now() / 1000;
const CAR_STATE_TEXT = { on_track: "on track", in_pit: "IN PIT", pit_lane: "PIT LANE", garage: "garage" };

class Card {
  constructor(el) {
    this.el = el;
    this.id = el.dataset.sessionId;
    this.live = el.dataset.live === "true";
    this.race = new RaceTables();
    this.telemetry = null;
    this.lastDataAt = null;
    this.monitorGone = false;
    this.joinError = null;
  }

  set(name, text) {
    const node = this.el.querySelector(`[data-field="${name}"]`);
    if (node && node.textContent !== text) node.textContent = text;
    return node;
  }

  draw(connected, everConnected) {
    const t = this.telemetry || {};
    this.set("driver", fmtText(t.player_name));
    const where = [t.car_name, t.track_name].filter((v) => typeof v === "string" && v).join(" · ");
    this.set("where", where || DASH);
    this.set("lap", isNum(t.lap) ? String(t.lap) : DASH);
    this.set("position", fmtPosition(t.position));
    this.set("fuel", fmtLitres(t.fuel));
    const lapsLeft = this.race.summary.laps_left;
    this.set("laps_left", isNum(lapsLeft) ? lapsLeft.toFixed(1) : DASH);
    this.set("last_lap", fmtLapTime(this.race.lastLap));
    this.set("best_lap", fmtLapTime(this.race.bestLap));
    const temps = t.tire_temps && typeof t.tire_temps === "object" ? t.tire_temps : {};
    for (const corner of ["fl", "fr", "rl", "rr"]) this.set(`tyre_${corner}`, fmtTemp(temps[corner]));

    const state = this.race.carState;
    const badge = this.el.querySelector('[data-field="car_state"]');
    const pit = carStateBadge(state); // IN PIT / PIT LANE stand out; on track and garage do not
    const text = pit || CAR_STATE_TEXT[state] || "";
    badge.className = pit ? "badge car-state" : "badge ended";
    badge.hidden = !text;
    badge.textContent = text;

    const conn = this.el.querySelector('[data-field="connection"]');
    let status;
    if (!this.live) status = { state: "stale", text: "not live" };
    else if (this.joinError) status = { state: "stale", text: this.joinError };
    else if (this.monitorGone) status = { state: "stale", text: "monitor gone" };
    else status = connectionStatus({ connected, everConnected, lastDataAt: this.lastDataAt, now: now(), staleAfter });
    conn.className = `badge conn-${status.state}`;
    conn.dataset.state = status.state;
    if (conn.textContent !== status.text) conn.textContent = status.text;
  }

  receive(kind, message) {
    this.lastDataAt = now();
    if (kind === "telemetry") {
      if (message.telemetry && typeof message.telemetry === "object") this.telemetry = message.telemetry;
      this.race.noteFrame(message.race);
      this.monitorGone = false;
    } else if (kind === "race_tables") {
      this.race.replace(message);
    } else if (RACE_EVENTS.includes(kind)) {
      this.race.apply(kind, message);
      if (kind === "alert" && message.kind === "publisher_gone") this.monitorGone = true;
    }
  }
}

const cards = new Map([...root.querySelectorAll(".car-card")].map((el) => [el.dataset.sessionId, new Card(el)]));
const conn = { connected: false, everConnected: false };
const drawAll = () => cards.forEach((card) => card.draw(conn.connected, conn.everConnected));

const socket = io({ transports: ["websocket", "polling"] });

// One join per live card; the server allows a burst of 10 joins per connection, so 4 cards and a
// reconnect or two fit. A rejoin asks for the whole state again (race_tables replaces the laps).
function joinAll() {
  for (const card of cards.values()) {
    if (!card.live) continue;
    socket.timeout(10000).emit("join_session", { session_id: card.id }, (err, ack) => {
      card.joinError = err || !ack || !ack.ok ? `could not join: ${err ? "no answer" : (ack && ack.message) || "error"}` : null;
      card.draw(conn.connected, conn.everConnected);
    });
  }
}

socket.on("connect", () => {
  conn.connected = true;
  conn.everConnected = true;
  joinAll();
  drawAll();
});
socket.on("disconnect", (reason) => {
  conn.connected = false;
  drawAll();
  if (reason === "io server disconnect") setTimeout(() => socket.connect(), 1000);
});

function route(kind) {
  return (message) => {
    if (!message || typeof message !== "object") return;
    const card = cards.get(message.session_id);
    if (!card) return;
    card.receive(kind, message);
    card.draw(conn.connected, conn.everConnected);
  };
}
socket.on("telemetry_update", route("telemetry"));
socket.on("race_tables", route("race_tables"));
for (const name of RACE_EVENTS) socket.on(name, route(name));

window.racedashCars = { socket, cards };
drawAll();
setInterval(drawAll, 1000); // data ages move on without messages
