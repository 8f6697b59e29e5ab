// The connection badge: connected, reconnecting, or stale, with the age of the latest data.
import { DASH } from "./format.js";

function age(seconds) {
  if (seconds === null) return DASH;
  if (seconds < 60) return `${Math.floor(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h`;
}

// {state, text}: state is one of connecting, connected, reconnecting, stale, ended.
// ended: the server said the session's monitor disconnected and no frame came since.
// unknownSession: the join found a session with no data at all (no monitor has published yet).
export function connectionStatus({
  connected, everConnected, lastDataAt, now, staleAfter, paused = false, ended = false, unknownSession = false,
}) {
  const dataAge = lastDataAt === null ? null : Math.max(0, now - lastDataAt);
  if (!connected) {
    if (!everConnected) return { state: "connecting", text: "connecting…" };
    return { state: "reconnecting", text: dataAge === null ? "reconnecting…" : `reconnecting… data ${age(dataAge)} old` };
  }
  if (paused) return { state: "connected", text: "connected · paused" };
  if (ended) return { state: "ended", text: dataAge === null ? "session ended" : `session ended · data ${age(dataAge)} old` };
  if (unknownSession) return { state: "connected", text: "No such session yet — waiting for its monitor" };
  if (dataAge === null) return { state: "connected", text: "connected · waiting for data" };
  if (dataAge > staleAfter) return { state: "stale", text: `stale · no data for ${age(dataAge)}` };
  return { state: "connected", text: "connected" };
}
