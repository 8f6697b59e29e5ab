// The telemetry frames a page holds, in order, for the charts and time-shift. A frame keeps the
// server's `race` object that came with it (strategy and car state as of that frame), if any.
// Live frames are ordered by (epoch, seq): `epoch` is bumped when the server's sequence
// restarts (a server without recordings lost its history). Replayed frames are ordered
// by arrival; a frame earlier in time than the last one means the replay went back.

import { isNum, parseTimestamp } from "./format.js";

const EPOCH_SPAN = 1e12;

export function frameTime(telemetry, receivedAt) {
  const stamped = parseTimestamp(telemetry && telemetry.timestamp);
  if (stamped !== null) return stamped;
  return isNum(receivedAt) ? receivedAt : Date.now() / 1000;
}

export class FrameStore {
  constructor(limit = 20000) {
    this.limit = limit;
    this.frames = []; // {key, seq, t, telemetry, race}
    this.epoch = 0;
    this.lastSeq = null; // highest seq seen in the current epoch (what a rejoin asks after)
    this._arrivals = 0;
  }

  get length() {
    return this.frames.length;
  }

  get last() {
    return this.frames[this.frames.length - 1] || null;
  }

  newEpoch() {
    this.epoch += 1;
    this.lastSeq = null;
  }

  noteSeq(seq) {
    if (isNum(seq) && (this.lastSeq === null || seq > this.lastSeq)) this.lastSeq = seq;
  }

  _key(seq) {
    this._arrivals += 1;
    return isNum(seq) ? this.epoch * EPOCH_SPAN + seq : this.epoch * EPOCH_SPAN + this._arrivals / 1e6;
  }

  // Adds one frame; returns "append", "insert" (not at the end: derived state must be
  // rebuilt), "rewind" (replay went back: frames after it were dropped) or "duplicate".
  add({ seq, t, telemetry, race = null }, { replay = false } = {}) {
    this.noteSeq(seq);
    const frame = { key: this._key(seq), seq, t: frameTime(telemetry, t), telemetry, race };
    const last = this.last;
    if (replay) {
      // A seek re-sends the last frame before its point after the history that holds it.
      if (last && isNum(seq) && seq === last.seq && frame.t === last.t) return "duplicate";
      if (last && frame.t < last.t) {
        const keep = this.frames.findIndex((f) => f.t >= frame.t);
        this.frames.length = keep < 0 ? this.frames.length : keep;
        this.frames.push(frame);
        return "rewind";
      }
      this._push(frame);
      return "append";
    }
    if (!last || frame.key > last.key) {
      this._push(frame);
      return "append";
    }
    const i = this._indexOfKey(frame.key);
    if (i < this.frames.length && this.frames[i].key === frame.key) return "duplicate";
    this.frames.splice(i, 0, frame);
    return "insert";
  }

  // Replaces everything (a replay's history window after a seek).
  replace(frames) {
    this.frames = [];
    for (const f of frames) this.add(f, { replay: true });
  }

  _push(frame) {
    this.frames.push(frame);
    if (this.frames.length > this.limit) this.frames.splice(0, this.frames.length - this.limit);
  }

  _indexOfKey(key) {
    let lo = 0;
    let hi = this.frames.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.frames[mid].key < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  // Where a live frame of this store is (frames are in key order), or -1.
  indexOf(frame) {
    const i = frame ? this._indexOfKey(frame.key) : -1;
    return i >= 0 && this.frames[i] === frame ? i : -1;
  }

  // The latest frame at or before time t (for time-shift), or the first frame.
  at(t) {
    let lo = 0;
    let hi = this.frames.length - 1;
    if (hi < 0) return null;
    if (t >= this.frames[hi].t) return this.frames[hi];
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.frames[mid].t <= t) lo = mid;
      else hi = mid - 1;
    }
    return this.frames[lo];
  }
}
