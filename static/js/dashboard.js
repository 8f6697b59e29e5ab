// Minimal live dashboard: join the session and show the latest values.
const root = document.getElementById("dashboard");
const sessionId = root.dataset.sessionId;
const connection = document.getElementById("connection");
const latest = document.getElementById("latest");
const setupSummary = document.getElementById("setup-summary");
let lastSeq = null;

const socket = io({ transports: ["websocket", "polling"] });

socket.on("connect", () => {
  connection.textContent = "connected";
  const request = { session_id: sessionId };
  if (lastSeq !== null) request.last_seq = lastSeq;
  socket.emit("join_session", request, (ack) => {
    if (!ack || !ack.ok) connection.textContent = `error: ${ack ? ack.message : "no answer"}`;
  });
});
socket.on("disconnect", () => { connection.textContent = "reconnecting…"; });

function show(values) {
  latest.replaceChildren();
  for (const [key, value] of Object.entries(values)) {
    const dt = document.createElement("dt");
    dt.textContent = key;
    const dd = document.createElement("dd");
    dd.dataset.field = key;
    dd.textContent = typeof value === "object" ? JSON.stringify(value) : String(value);
    latest.append(dt, dd);
  }
}

socket.on("telemetry_update", (message) => {
  if (typeof message.seq === "number") lastSeq = message.seq;
  show(message.telemetry || {});
});

socket.on("setup_update", (message) => {
  if (typeof message.seq === "number") lastSeq = message.seq;
  const values = ((message.setup || {}).carSetup || {}).garageValues || {};
  setupSummary.textContent = `${Object.keys(values).length} settings, received ${message.timestamp}`;
});
