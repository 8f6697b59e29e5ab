// The three uPlot charts: lap times per lap, fuel over time, tyre temperatures over time.
// Data is rebuilt from the frame store and the server's lap rows (race.js), at most once per
// animation frame, so a burst of history costs one redraw. Lap times are the server's: clean
// laps make the line; in-, out- and pit laps are grey dots beside it (their time is true, but
// not pace); laps the server calls incomplete (spanning a data gap, start not seen) or could not
// time are left out, never plotted as 0:00.
// While the live view is time-shifted, a dashed line marks the shown moment (and its lap), so
// the charts say where "then" is.

import { knownTemp, isNum, fmtLapTime } from "./format.js";

const INK = "#111";
const GRID = "#c8c8c8";
const CORNER_COLOURS = { fl: "#0047b3", fr: "#c0002a", rl: "#007a3d", rr: "#7a3db8" };
const MARKER = "#e6007e"; // no series uses it
const PIT_LAP = "#555"; // grey: timed, but not counted in pace or fuel per lap

// A uPlot plugin drawing a vertical dashed line at x = position() (nothing when it is null).
function markerLine(position) {
  const draw = (u) => {
    const x = position();
    if (x === null) return;
    const px = u.valToPos(x, "x", true);
    const { left, top, width: w, height: h } = u.bbox;
    if (!(px >= left && px <= left + w)) return;
    const ctx = u.ctx;
    const dpr = window.devicePixelRatio || 1; // the canvas is in device pixels
    ctx.save();
    ctx.strokeStyle = MARKER;
    ctx.lineWidth = 2 * dpr;
    ctx.setLineDash([6 * dpr, 4 * dpr]);
    ctx.beginPath();
    ctx.moveTo(px, top);
    ctx.lineTo(px, top + h);
    ctx.stroke();
    ctx.restore();
  };
  return { hooks: { draw: [draw] } };
}

function axes({ yValues = null, ySize = 56, xIncrs = null } = {}) {
  const common = { stroke: INK, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID }, font: "12px system-ui" };
  // `space`: the least room between ticks, in CSS pixels; wide enough for a clock time (x) and a
  // lap time (y) so that labels never overlap on a phone-wide chart.
  return [
    { ...common, space: 70, ...(xIncrs ? { incrs: xIncrs } : {}) },
    // The figure's caption names the chart and its unit; no rotated axis label to clip.
    { ...common, space: 28, size: ySize, ...(yValues ? { values: yValues } : {}) },
  ];
}

function width(el) {
  return Math.max(240, Math.floor(el.clientWidth || 300));
}

// [lap numbers, clean lap times, in/out/pit lap times] from the server's lap rows. uPlot needs
// increasing x: when the lap number goes back (a new game session) the chart starts again.
export function lapSeries(laps) {
  let rows = [];
  for (const row of laps) {
    if (!isNum(row.lap)) continue;
    if (rows.length && row.lap <= rows[rows.length - 1].lap) rows = [];
    rows.push(row);
  }
  const timed = (row) => isNum(row.time) && row.time > 0;
  const x = [];
  const clean = [];
  const pitLaps = [];
  for (const row of rows) {
    const isClean = row.clean === true && timed(row);
    const marked = !isClean && row.incomplete !== true && timed(row);
    if (!isClean && !marked) continue;
    x.push(row.lap);
    clean.push(isClean ? row.time : null);
    pitLaps.push(marked ? row.time : null);
  }
  return [x, clean, pitLaps];
}

export class Charts {
  constructor({ lapsEl, fuelEl, tyresEl }) {
    const uPlot = window.uPlot;
    const height = 180;
    this.els = [lapsEl, fuelEl, tyresEl];
    this.marker = null; // {t, lap} of the time-shifted moment, or null when following live
    const atTime = markerLine(() => (this.marker ? this.marker.t : null));
    const atLap = markerLine(() => (this.marker && isNum(this.marker.lap) ? this.marker.lap : null));
    this.laps = new uPlot(
      {
        width: width(lapsEl),
        height,
        scales: { x: { time: false } },
        legend: { show: false },
        plugins: [atLap],
        axes: axes({
          yValues: (u, vals) => vals.map((v) => fmtLapTime(v)),
          ySize: 84,
          xIncrs: [1, 2, 5, 10, 20, 50, 100, 200, 500],
        }),
        series: [
          { label: "lap" },
          // The pace line joins the clean laps across the in/out/pit laps between them.
          { label: "lap time", stroke: "#0047b3", width: 2, spanGaps: true, points: { show: true, size: 6 } },
          // Dots only: an in- or out-lap is no step in the pace line.
          { label: "in/out/pit lap", stroke: PIT_LAP, paths: () => null, points: { show: true, size: 8, fill: PIT_LAP } },
        ],
      },
      [[], [], []],
      lapsEl,
    );
    this.fuel = new uPlot(
      {
        width: width(fuelEl),
        height,
        legend: { show: false },
        plugins: [atTime],
        axes: axes(),
        series: [{}, { label: "fuel", stroke: "#b35900", width: 2, spanGaps: false }],
      },
      [[], []],
      fuelEl,
    );
    this.tyres = new uPlot(
      {
        width: width(tyresEl),
        height,
        legend: { show: true, live: false },
        plugins: [atTime],
        axes: axes(),
        series: [
          {},
          ...Object.entries(CORNER_COLOURS).map(([corner, colour]) => ({
            label: corner.toUpperCase(),
            stroke: colour,
            width: 2,
          })),
        ],
      },
      [[], [], [], [], []],
      tyresEl,
    );
    this.pending = null;
    this.resizeObserver = new ResizeObserver(() => this.resize());
    for (const el of this.els) this.resizeObserver.observe(el);
  }

  resize() {
    this.laps.setSize({ width: width(this.els[0]), height: 180 });
    this.fuel.setSize({ width: width(this.els[1]), height: 180 });
    this.tyres.setSize({ width: width(this.els[2]), height: 180 });
  }

  // The time-shifted moment ({t, lap}) or null (following live); redraws only the overlay.
  setMarker(marker) {
    const same = (a, b) => (a === null ? b === null : b !== null && a.t === b.t && a.lap === b.lap);
    if (same(this.marker, marker)) return;
    this.marker = marker;
    for (const chart of [this.laps, this.fuel, this.tyres]) chart.redraw(false);
  }

  // Schedules a redraw from the current store and race tables.
  update(store, race) {
    this.pending = { store, race };
    if (this._scheduled) return;
    this._scheduled = requestAnimationFrame(() => {
      this._scheduled = null;
      const { store: s, race: r } = this.pending;
      this._draw(s, r);
    });
  }

  _draw(store, race) {
    const [lapX, clean, pitLaps] = lapSeries(race.laps);
    this.laps.setData([lapX, clean, pitLaps]);

    const xs = [];
    const fuel = [];
    const tyres = { fl: [], fr: [], rl: [], rr: [] };
    let lastT = -Infinity;
    for (const f of store.frames) {
      // uPlot needs increasing x; a frame stamped out of order is skipped in the chart only.
      if (!(f.t > lastT)) continue;
      lastT = f.t;
      xs.push(f.t);
      const tel = f.telemetry || {};
      fuel.push(isNum(tel.fuel) && tel.fuel >= 0 ? tel.fuel : null);
      const temps = tel.tire_temps || {};
      for (const c of Object.keys(tyres)) tyres[c].push(knownTemp(temps[c]));
    }
    this.fuel.setData([xs, fuel]);
    this.tyres.setData([xs, tyres.fl, tyres.fr, tyres.rl, tyres.rr]);
  }
}
