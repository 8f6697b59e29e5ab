// The timeline bar under the header. On a live session it is the time-shift control
// (drag back to look at an earlier moment, "Go live" to return, "Play from here" to replay
// the recording from that moment); in a replay room it is the transport bar (play/pause,
// speed, scrubber with lap markers, jump to lap, and a link back to a session still live).
// It only draws and reports the user's intent through callbacks; dashboard.js decides.

import { fmtDuration, isNum } from "./format.js";

export class Transport {
  constructor(root, callbacks) {
    this.cb = callbacks;
    this.el = {
      play: root.querySelector("#tp-play"),
      speedLabel: root.querySelector("#tp-speed-label"),
      speed: root.querySelector("#tp-speed"),
      time: root.querySelector("#tp-time"),
      lap: root.querySelector("#tp-lap"),
      live: root.querySelector("#tp-live"),
      playHere: root.querySelector("#tp-play-here"),
      toLive: root.querySelector("#tp-to-live"),
      scrub: root.querySelector("#tp-scrub"),
      markers: root.querySelector("#tp-markers"),
      status: root.querySelector("#tp-status"),
    };
    this.dragging = false;
    this.lapsShown = "";
    this.eventsEl = root.querySelector("#tp-events");
    this.eventsShown = "";
    const { scrub, play, speed, lap, live, playHere } = this.el;
    scrub.addEventListener("pointerdown", () => { this.dragging = true; });
    scrub.addEventListener("input", () => this.cb.onScrub(Number(scrub.value), false));
    scrub.addEventListener("change", () => {
      this.dragging = false;
      this.cb.onScrub(Number(scrub.value), true);
    });
    play.addEventListener("click", () => this.cb.onPlayPause());
    speed.addEventListener("change", () => this.cb.onSpeed(Number(speed.value)));
    lap.addEventListener("change", () => {
      if (lap.value !== "") this.cb.onJumpLap(Number(lap.value));
      lap.value = "";
    });
    live.addEventListener("click", () => this.cb.onGoLive());
    playHere.addEventListener("click", () => this.cb.onPlayFromHere());
  }

  setReplayControls(visible) {
    this.el.play.hidden = !visible;
    this.el.speedLabel.hidden = !visible;
    if (visible) {
      this.el.live.hidden = true;
      this.el.playHere.hidden = true;
    }
  }

  // In a replay room: where the recorded session is still live (null: it is not).
  setLiveLink(url) {
    const { toLive } = this.el;
    toLive.hidden = !url;
    if (url) toLive.href = url;
    else toLive.removeAttribute("href");
  }

  status(text) {
    this.el.status.textContent = text || "";
  }

  // position/duration in seconds from the start; laps: [{lap, t}] with t in the same seconds.
  draw({ position, duration, laps, timeText, playing = null, speed = null, shifted = false, live = false }) {
    const { scrub, time, play, speed: speedEl } = this.el;
    scrub.disabled = !(duration > 0);
    scrub.max = String(Math.max(0, duration));
    if (!this.dragging) scrub.value = String(Math.min(Math.max(0, position), Math.max(0, duration)));
    time.textContent = timeText;
    if (playing !== null) {
      play.textContent = playing ? "Pause" : "Play";
      play.dataset.state = playing ? "playing" : "paused";
    }
    if (speed !== null && document.activeElement !== speedEl && isNum(speed)) {
      const wanted = String(speed);
      if ([...speedEl.options].some((o) => o.value === wanted)) speedEl.value = wanted;
    }
    if (live) {
      this.el.live.hidden = !shifted;
      this.el.playHere.hidden = !shifted;
    }
    this._drawLaps(laps, duration);
  }

  // The race events (pit stops, driver and setup changes, alerts) as labelled markers under the
  // scrubber: events [{t, kind, label, onJump}], t in the scrubber's seconds. Each is a button
  // that jumps there (what a jump means is the caller's).
  drawEvents(events, duration) {
    const signature = `${duration > 0 ? Math.round(duration) : 0}|${events.map((e) => `${e.kind}@${Math.round(e.t)}:${e.label}`).join(",")}`;
    if (signature === this.eventsShown) return;
    this.eventsShown = signature;
    const marks = [];
    for (const event of duration > 0 ? events : []) {
      const mark = document.createElement("button");
      mark.type = "button";
      mark.className = `event-marker event-${event.kind}`;
      mark.style.left = `${Math.min(100, Math.max(0, (event.t / duration) * 100))}%`;
      // A letter as well as a colour: P(it), D(river), S(etup), ! (alert).
      mark.textContent = { pit_stop: "P", driver_change: "D", setup_change: "S", alert: "!" }[event.kind] || "•";
      mark.title = event.label;
      mark.setAttribute("aria-label", `${event.label}: jump there`);
      mark.dataset.kind = event.kind;
      mark.addEventListener("click", event.onJump);
      marks.push(mark);
    }
    this.eventsEl.replaceChildren(...marks);
  }

  _drawLaps(laps, duration) {
    const signature = `${duration > 0 ? Math.round(duration) : 0}|${laps.map((l) => `${l.lap}@${Math.round(l.t)}`).join(",")}`;
    if (signature === this.lapsShown) return;
    this.lapsShown = signature;
    const { markers, lap: select } = this.el;
    markers.replaceChildren();
    const options = [new Option("jump…", "")];
    for (const { lap, t } of laps) {
      if (!isNum(lap) || !isNum(t)) continue;
      options.push(new Option(`Lap ${lap} (${fmtDuration(t)})`, String(lap)));
      if (!(duration > 0)) continue;
      const tick = document.createElement("span");
      tick.className = "marker";
      tick.style.left = `${Math.min(100, Math.max(0, (t / duration) * 100))}%`;
      tick.title = `Lap ${lap}`;
      tick.dataset.lap = String(lap);
      markers.append(tick);
    }
    select.replaceChildren(...options);
  }
}
