// The five uPlot charts: lap times per lap; fuel, tyre temperatures, brake temperatures and tyre
// pressures over time (one series per corner). Values are plotted in the user's display units
// (format.js: °C/°F, kPa/psi, L/gal); the figure captions name the unit. Unknown values (the game's
// −273.15 °C tyres, brakes ≤ 0 K, pressures 0) are gaps, never plotted as 0.
// Data is rebuilt from the frame store and the server's lap rows (race.js), at most once per
// animation frame, so a burst of history costs one redraw. Lap times are the server's: clean
// laps make the line; in-, out- and pit laps are grey dots beside it (their time is true, but
// not pace); laps the server calls incomplete (spanning a data gap, start not seen) or could not
// time are left out, never plotted as 0:00.
// While the live view is time-shifted, a dashed line marks the shown moment (and its lap), so
// the charts say where "then" is.

import {
  knownTemp, knownPressure, brakeCelsius, isNum, fmtLapTime,
  tempValue, tempUnit, pressureValue, pressureUnit, fuelValue, fuelUnit,
} from "./format.js";

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

const AXIS_FONT = "12px system-ui";
const TIME_LABEL_SAMPLE = "88:88"; // HH:MM (or :SS between whole minutes): the widest x label
const LABEL_PAD = 16; // CSS pixels of air between two x labels

// The width in CSS pixels of `text` in the axes' font (a canvas 2D context, as uPlot draws them).
let measureCtx = null;
export function labelWidth(text = TIME_LABEL_SAMPLE, font = AXIS_FONT) {
  if (!measureCtx) measureCtx = document.createElement("canvas").getContext("2d");
  measureCtx.font = font;
  return Math.ceil(measureCtx.measureText(text).width);
}

// The least room between x ticks: a time label plus padding, so labels never overlap.
export function timeSpace() {
  return labelWidth() + LABEL_PAD;
}

const pad2 = (n) => String(n).padStart(2, "0");
// Short clock labels: HH:MM; between whole minutes (ticks under a minute apart) just :SS.
function timeValues(u, splits, axisIdx, foundSpace, foundIncr) {
  return splits.map((t) => {
    const d = new Date(t * 1000);
    if (foundIncr < 60 && d.getSeconds() !== 0) return `:${pad2(d.getSeconds())}`;
    return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  });
}
const TIME_INCRS = [1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 240, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

function axes({ yValues = null, ySize = 56, xIncrs = null, time = true } = {}) {
  const common = { stroke: INK, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID }, font: AXIS_FONT };
  // `space`: the least room between ticks, in CSS pixels: a measured clock label plus padding (x,
  // time charts), a lap number (x, lap chart), a value (y), so that labels never overlap on a
  // phone-wide chart.
  const x = time
    ? { ...common, space: () => timeSpace(), incrs: TIME_INCRS, values: timeValues }
    : { ...common, space: 70, ...(xIncrs ? { incrs: xIncrs } : {}) };
  return [
    x,
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

const HEIGHT = 180;

function cornerSeries() {
  return [
    {},
    ...Object.entries(CORNER_COLOURS).map(([corner, colour]) => ({
      label: corner.toUpperCase(),
      stroke: colour,
      width: 2,
      spanGaps: false, // an unknown value is a gap in the line, never a 0
    })),
  ];
}

// The plots are made by start(): a page calls it once what it shows first is on screen (making
// them measures the page's layout, and drawing them takes a while); updates before it wait for it.
export class Charts {
  constructor({ lapsEl, fuelEl, tyresEl, brakesEl = null, pressuresEl = null }) {
    this.elements = { lapsEl, fuelEl, tyresEl, brakesEl, pressuresEl };
    this.marker = null; // {t, lap} of the time-shifted moment, or null when following live
    this.all = [];
    this.els = [];
    this.pending = null;
    this.started = false;
  }

  start() {
    if (this.started) return;
    this.started = true;
    const { lapsEl, fuelEl, tyresEl, brakesEl, pressuresEl } = this.elements;
    const uPlot = window.uPlot;
    const height = HEIGHT;
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
          time: false,
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
    const cornerChart = (el) =>
      new uPlot(
        { width: width(el), height, legend: { show: true, live: false }, plugins: [atTime], axes: axes(), series: cornerSeries() },
        [[], [], [], [], []],
        el,
      );
    this.tyres = cornerChart(tyresEl);
    this.brakes = brakesEl ? cornerChart(brakesEl) : null;
    this.pressures = pressuresEl ? cornerChart(pressuresEl) : null;
    this.all = [this.laps, this.fuel, this.tyres, this.brakes, this.pressures].filter(Boolean);
    this.els = [lapsEl, fuelEl, tyresEl, brakesEl, pressuresEl].filter(Boolean);
    this.resizeObserver = new ResizeObserver(() => this.resize());
    for (const el of this.els) this.resizeObserver.observe(el);
    if (this.pending) this._schedule();
  }

  resize() {
    this.all.forEach((chart, i) => chart.setSize({ width: width(this.els[i]), height: HEIGHT }));
  }

  // The time-shifted moment ({t, lap}) or null (following live); redraws only the overlay.
  setMarker(marker) {
    const same = (a, b) => (a === null ? b === null : b !== null && a.t === b.t && a.lap === b.lap);
    if (same(this.marker, marker)) return;
    this.marker = marker;
    for (const chart of this.all) chart.redraw(false);
  }

  // Schedules a redraw from the current store and race tables.
  update(store, race) {
    this.pending = { store, race };
    if (this.started) this._schedule();
  }

  _schedule() {
    if (this._scheduled) return;
    this._scheduled = requestAnimationFrame(() => {
      this._scheduled = null;
      const { store: s, race: r } = this.pending;
      this._draw(s, r);
    });
  }

  // The unit names in the figure captions (elements marked data-chart-unit="temp|pressure|fuel").
  _captions() {
    const names = { temp: tempUnit(), pressure: pressureUnit(), fuel: fuelUnit() };
    for (const el of document.querySelectorAll("[data-chart-unit]")) {
      const text = names[el.dataset.chartUnit];
      if (text && el.textContent !== text) el.textContent = text;
    }
  }

  _draw(store, race) {
    const [lapX, clean, pitLaps] = lapSeries(race.laps);
    this.laps.setData([lapX, clean, pitLaps]);

    const xs = [];
    const fuel = [];
    const corners = ["fl", "fr", "rl", "rr"];
    const perCorner = () => ({ fl: [], fr: [], rl: [], rr: [] });
    const tyres = perCorner();
    const brakes = perCorner();
    const pressures = perCorner();
    let lastT = -Infinity;
    for (const f of store.frames) {
      // uPlot needs increasing x; a frame stamped out of order is skipped in the chart only.
      if (!(f.t > lastT)) continue;
      lastT = f.t;
      xs.push(f.t);
      const tel = f.telemetry || {};
      fuel.push(isNum(tel.fuel) && tel.fuel >= 0 ? fuelValue(tel.fuel) : null);
      const temps = tel.tire_temps || {};
      const brakeK = tel.brake_temps || {};
      const press = tel.tire_pressures || {};
      for (const c of corners) {
        tyres[c].push(tempValue(knownTemp(temps[c])));
        brakes[c].push(tempValue(brakeCelsius(brakeK[c])));
        pressures[c].push(pressureValue(knownPressure(press[c])));
      }
    }
    const rows = (byCorner) => [xs, ...corners.map((c) => byCorner[c])];
    this.fuel.setData([xs, fuel]);
    this.tyres.setData(rows(tyres));
    if (this.brakes) this.brakes.setData(rows(brakes));
    if (this.pressures) this.pressures.setData(rows(pressures));
    this._captions();
  }
}
