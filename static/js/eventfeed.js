// The event feed: the server's pit stops, driver changes, setup changes and alerts (race.js) as
// one list, newest first, each with its details as the server gave them. feedEntries is pure
// (tested in the browser); renderFeed draws it, with a jump button per entry where the page can
// go to that moment (a replay, or a live session's time-shift).

import { DASH, fmtClock, fmtLitres, isNum } from "./format.js";

// labelOf(key): the readable name of a setup key (setup.js); the key itself without one.
export function feedEntries(race, labelOf = (key) => key) {
  const entries = [];
  for (const stop of race.pitStops) {
    const details = [];
    if (isNum(stop.stationary_seconds)) details.push(`stationary ${stop.stationary_seconds.toFixed(1)} s`);
    if (isNum(stop.fuel_added) && stop.fuel_added > 0) details.push(`+${fmtLitres(stop.fuel_added)} fuel`);
    else details.push("no fuel");
    details.push(stop.tyres_changed ? "new tyres" : "same tyres");
    if (stop.driver_change && typeof stop.driver_change === "object") {
      details.push(`driver ${stop.driver_change.from || DASH} → ${stop.driver_change.to || DASH}`);
    }
    entries.push({ kind: "pit_stop", label: "PIT", title: `Pit stop${isNum(stop.number) ? ` ${stop.number}` : ""}`, details, row: stop });
  }
  for (const change of race.driverChanges) {
    entries.push({ kind: "driver_change", label: "DRIVER", title: "Driver change", details: [`${change.from || DASH} → ${change.to || DASH}`], row: change });
  }
  for (const change of race.setupChanges) {
    const list = Array.isArray(change.changes) ? change.changes : [];
    const details = list.map((c) => `${labelOf(c.key)}: ${c.old ?? DASH} → ${c.new ?? DASH}`);
    entries.push({ kind: "setup_change", label: "SETUP", title: `Setup change (${list.length} setting${list.length === 1 ? "" : "s"})`, details, row: change });
  }
  for (const alert of race.alerts) {
    const severity = typeof alert.severity === "string" ? alert.severity : "info";
    entries.push({
      kind: "alert",
      label: severity === "critical" ? "ALERT" : "WARN",
      title: typeof alert.message === "string" && alert.message ? alert.message : String(alert.kind || "alert"),
      details: [],
      row: alert,
      severity,
    });
  }
  // Newest first: by the frame that made them (seq), then by time.
  entries.sort((a, b) => (b.row.seq - a.row.seq) || ((b.row.t || 0) - (a.row.t || 0)));
  return entries;
}

// entries from feedEntries; canJump(entry) says whether its moment can be shown; onJump(entry).
export function renderFeed(list, entries, { canJump, onJump }) {
  const items = [];
  for (const entry of entries) {
    const li = document.createElement("li");
    li.className = `feed-item feed-${entry.kind}${entry.severity ? ` severity-${entry.severity}` : ""}`;
    li.dataset.kind = entry.kind;
    li.dataset.seq = String(entry.row.seq);
    const badge = document.createElement("span");
    badge.className = "feed-badge";
    badge.textContent = entry.label;
    const when = `${isNum(entry.row.lap) ? `lap ${entry.row.lap} · ` : ""}${fmtClock(entry.row.t)}`;
    const head = document.createElement(canJump(entry) ? "button" : "span");
    head.className = "feed-head";
    head.textContent = `${entry.title} · ${when}`;
    if (head.tagName === "BUTTON") {
      head.type = "button";
      head.title = "show this moment";
      head.addEventListener("click", () => onJump(entry));
    }
    li.append(badge, " ", head);
    if (entry.details.length) {
      const details = document.createElement("ul");
      details.className = "feed-details";
      for (const text of entry.details) {
        const d = document.createElement("li");
        d.textContent = text;
        details.append(d);
      }
      li.append(details);
    }
    items.push(li);
  }
  list.replaceChildren(...items);
}
