// Lap times and fuel use measured from lap transitions in the telemetry stream.
// The monitor sends neither last/best lap nor fuel per lap: both come from watching
// `lap` increase. Pure: feed frames in time order with push(); rebuild by replaying.

import { isNum, knownLapTime } from "./format.js";

const RECENT_LAPS = 5; // estimates average the last few clean laps

export class StintTracker {
  constructor() {
    this.laps = []; // completed laps: {lap, time, fuelUsed, endT}
    this.prev = null; // previous frame: {t, lap, lapTime, fuel}
    this.lapStartFuel = null; // fuel when the current lap began, if its start was seen
    this.lapStartT = null;
    this.refuelledThisLap = false;
  }

  // frame: {t: epoch seconds, telemetry: {...}}
  push(frame) {
    const tel = frame.telemetry || {};
    const cur = {
      t: isNum(frame.t) ? frame.t : null,
      lap: isNum(tel.lap) ? tel.lap : null,
      lapTime: isNum(tel.lap_time) ? tel.lap_time : null,
      fuel: isNum(tel.fuel) ? tel.fuel : null,
    };
    const prev = this.prev;
    if (prev && cur.lap !== null && prev.lap !== null) {
      if (cur.lap > prev.lap) this._crossLine(prev, cur);
      else if (cur.lap < prev.lap) this._restart(cur);
      else if (cur.fuel !== null && prev.fuel !== null && cur.fuel > prev.fuel + 0.05) this.refuelledThisLap = true;
    } else if (!prev) {
      this._restart(cur, false);
    }
    this.prev = cur;
  }

  _restart(cur, seenStart = false) {
    // A lap number going down is a new game session: earlier laps stay listed,
    // but the current lap's start was not seen.
    this.lapStartFuel = seenStart ? cur.fuel : null;
    this.lapStartT = seenStart ? cur.t : null;
    this.refuelledThisLap = false;
  }

  _crossLine(prev, cur) {
    // The line was crossed cur.lapTime seconds before this frame and the finished lap
    // began prev.lapTime seconds before the previous frame: exact whatever the frame rate.
    let time = knownLapTime(prev.lapTime);
    const sinceLine = knownLapTime(cur.lapTime);
    if (time !== null && prev.t !== null && cur.t !== null && sinceLine !== null) {
      const gap = cur.t - prev.t - sinceLine;
      if (gap >= 0) time += gap;
    }
    if (time !== null && time <= 0) time = null;
    let fuelUsed = null;
    if (this.lapStartFuel !== null && cur.fuel !== null && !this.refuelledThisLap) {
      const used = this.lapStartFuel - cur.fuel;
      if (used > 0) fuelUsed = used;
    }
    // Several laps at once (a gap in the data): nothing can be said per lap.
    if (cur.lap - prev.lap > 1) {
      time = null;
      fuelUsed = null;
    }
    this.laps.push({ lap: prev.lap, time, fuelUsed, endT: cur.t });
    this.lapStartFuel = cur.fuel;
    this.lapStartT = cur.t;
    this.refuelledThisLap = false;
  }

  get lastLap() {
    const last = this.laps[this.laps.length - 1];
    return last ? last.time : null;
  }

  get bestLap() {
    const times = this.laps.map((l) => l.time).filter((t) => t !== null);
    return times.length ? Math.min(...times) : null;
  }

  fuelPerLap() {
    const used = this.laps.map((l) => l.fuelUsed).filter((u) => u !== null).slice(-RECENT_LAPS);
    return used.length ? used.reduce((a, b) => a + b, 0) / used.length : null;
  }

  typicalLapTime() {
    const times = this.laps.map((l) => l.time).filter((t) => t !== null).slice(-RECENT_LAPS);
    return times.length ? times.reduce((a, b) => a + b, 0) / times.length : null;
  }

  // {perLap, lapsLeft, timeLeft} for the given fuel level; nulls where unknown.
  fuelEstimate(fuel) {
    const perLap = this.fuelPerLap();
    if (perLap === null || !isNum(fuel) || fuel < 0) return { perLap, lapsLeft: null, timeLeft: null };
    const lapsLeft = fuel / perLap;
    const lapTime = this.typicalLapTime();
    return { perLap, lapsLeft, timeLeft: lapTime === null ? null : lapsLeft * lapTime };
  }
}

// Low fuel: fewer laps than the threshold left, or (before any lap was measured)
// less than 10 % of the tank.
export function isLowFuel(fuel, capacity, lapsLeft, thresholdLaps) {
  if (!isNum(fuel) || fuel < 0) return false;
  if (lapsLeft !== null && isNum(lapsLeft)) return lapsLeft < thresholdLaps;
  return isNum(capacity) && capacity > 0 && fuel / capacity < 0.1;
}
