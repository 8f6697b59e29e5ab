// Formatting of telemetry values, and the rules for what the game reports as unknown.
// Pure functions (no DOM), so they are tested directly in the browser tests. One setting: the
// display units (prefs.js sets them from the user's choice). Values arrive and are kept in °C,
// kPa and litres; only what is shown is converted, so no figure is ever computed in other units.

export const DASH = "—";

const DEFAULT_UNITS = { temp: "C", pressure: "kPa", fuel: "L" };
let units = { ...DEFAULT_UNITS };

// {temp: "C"|"F", pressure: "kPa"|"psi", fuel: "L"|"gal"}; unknown choices keep the default.
export function setUnits(choice = {}) {
  units = {
    temp: choice.temp === "F" ? "F" : "C",
    pressure: choice.pressure === "psi" ? "psi" : "kPa",
    fuel: choice.fuel === "gal" ? "gal" : "L",
  };
}

export function getUnits() {
  return { ...units };
}

const KPA_PER_PSI = 6.894757;
const LITRES_PER_GALLON = 3.785412; // US gallon

// A °C temperature in the display unit, with its unit ("86 °C", "187 °F").
export function showTemp(celsius) {
  return `${bareTemp(celsius)} ${tempUnit()}`;
}

export function tempUnit() {
  return units.temp === "F" ? "°F" : "°C";
}

// A °C temperature in the display unit, without the unit (compact tables name it in the header).
export function bareTemp(celsius) {
  return String(Math.round(units.temp === "F" ? celsius * 9 / 5 + 32 : celsius));
}

// Numbers in the display unit, for the charts (which plot them without a unit in each label).
export function tempValue(celsius) {
  return celsius === null || !isNum(celsius) ? null : units.temp === "F" ? celsius * 9 / 5 + 32 : celsius;
}

export function pressureValue(kpa) {
  return kpa === null || !isNum(kpa) ? null : units.pressure === "psi" ? kpa / KPA_PER_PSI : kpa;
}

export function pressureUnit() {
  return units.pressure === "psi" ? "psi" : "kPa";
}

export function fuelValue(litres) {
  return litres === null || !isNum(litres) ? null : units.fuel === "gal" ? litres / LITRES_PER_GALLON : litres;
}

export function fuelUnit() {
  return units.fuel === "gal" ? "gal" : "L";
}

export function isNum(v) {
  return typeof v === "number" && Number.isFinite(v);
}

// The game reports −273.15 °C (absolute zero) for a temperature it does not know.
export function knownTemp(v) {
  return isNum(v) && v > -273 ? v : null;
}

// The game's shared memory reports brake temperatures in Kelvin (tyres are already °C):
// °C for display and for the °C brake window; not a number, or ≤ 0 K, is unknown (null).
export function brakeCelsius(kelvin) {
  return isNum(kelvin) && kelvin > 0 ? kelvin - 273.15 : null;
}

// Engine water at 0 °C only happens in the garage before the game reports it.
export function knownWaterTemp(v) {
  return isNum(v) && v > 0 ? v : null;
}

// Tyre pressures are 0 in the garage.
export function knownPressure(v) {
  return isNum(v) && v > 0 ? v : null;
}

// lap_time is negative before the car first crosses a timing line.
export function knownLapTime(v) {
  return isNum(v) && v >= 0 ? v : null;
}

export function fmtTemp(v, known = knownTemp) {
  const k = known(v);
  return k === null ? DASH : showTemp(k);
}

export function fmtPressure(v) {
  const k = knownPressure(v);
  if (k === null) return DASH;
  return units.pressure === "psi" ? `${(k / KPA_PER_PSI).toFixed(1)} psi` : `${k.toFixed(0)} kPa`;
}

// Wear as the game reports it: 1.0 is a new tyre, 0.0 is worn out.
export function knownWear(v) {
  return isNum(v) && v >= 0 && v <= 1 ? v : null;
}

export function fmtWear(v) {
  const k = knownWear(v);
  return k === null ? DASH : `${Math.round(k * 100)} %`;
}

export function fmtLapTime(v) {
  let k = knownLapTime(v);
  if (k === null) return DASH;
  k = Math.round(k * 1000) / 1000; // so that 59.9999 s shows as 1:00.000, not 0:60.000
  const minutes = Math.floor(k / 60);
  const seconds = k - minutes * 60;
  return `${minutes}:${seconds.toFixed(3).padStart(6, "0")}`;
}

export function fmtDuration(v) {
  if (!isNum(v) || v < 0) return DASH;
  const total = Math.floor(v);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const mm = String(m).padStart(h ? 2 : 1, "0");
  return `${h ? h + ":" : ""}${mm}:${String(s).padStart(2, "0")}`;
}

export function fmtLitres(v, digits = 1) {
  if (!isNum(v) || v < 0) return DASH;
  return units.fuel === "gal" ? `${(v / LITRES_PER_GALLON).toFixed(digits)} gal` : `${v.toFixed(digits)} L`;
}

export function fmtPosition(v) {
  return isNum(v) && v > 0 ? `P${v}` : DASH;
}

export function fmtInt(v) {
  return isNum(v) ? String(Math.round(v)) : DASH;
}

export function fmtGear(v) {
  if (!isNum(v)) return DASH;
  if (v === 0) return "N";
  if (v < 0) return "R";
  return String(v);
}

export function fmtText(v) {
  return typeof v === "string" && v.trim() ? v.trim() : DASH;
}

export function fmtBytes(v) {
  if (!isNum(v) || v < 0) return DASH;
  const units = ["B", "KB", "MB", "GB"];
  let n = v;
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export function fmtClock(epochSeconds) {
  if (!isNum(epochSeconds)) return DASH;
  return new Date(epochSeconds * 1000).toLocaleTimeString([], { hour12: false });
}

export function fmtDate(epochSeconds) {
  if (!isNum(epochSeconds)) return DASH;
  const d = new Date(epochSeconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// "cold" / "ok" / "hot" / "unknown" of a known-or-null value against a [low, high] window.
export function classify(value, window) {
  if (value === null || !isNum(value)) return "unknown";
  if (!Array.isArray(window) || window.length !== 2) return "ok";
  if (value < window[0]) return "cold";
  if (value > window[1]) return "hot";
  return "ok";
}

// Wear is one-sided: below `bad` is worn out, below `warn` needs watching.
export function classifyWear(value, thresholds) {
  if (value === null || !isNum(value)) return "unknown";
  const [bad, warn] = thresholds;
  if (value * 100 < bad) return "hot";
  if (value * 100 < warn) return "warm";
  return "ok";
}

// The monitor writes naive UTC plus "Z"; anything unparsable yields null.
export function parseTimestamp(value) {
  if (typeof value !== "string") return null;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms / 1000 : null;
}
