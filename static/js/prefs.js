// The viewer's display preferences, remembered in localStorage: light or dark (following the
// system's prefers-color-scheme until the user picks one) and units (°C/°F, kPa/psi, L/gal,
// applied by format.js's display functions). A cookie mirrors them, so that the server writes a
// dashboard's first values in the viewer's units and theme (racedash/pagefields.py): it reads
// `<theme>.<temp>.<pressure>.<fuel>`, "auto" for the system's theme.

import { setUnits } from "./format.js";

const THEME_KEY = "racedash.theme";
const UNITS_KEY = "racedash.units";
const COOKIE = "racedash_prefs";
const COOKIE_DAYS = 400; // the longest a browser keeps a cookie

function read(key) {
  try {
    return window.localStorage.getItem(key);
  } catch {
    return null; // storage blocked: preferences last for this page only
  }
}

function write(key, value) {
  try {
    window.localStorage.setItem(key, value);
  } catch {
    /* storage blocked: keep the choice for this page only */
  }
}

// "light" | "dark": the stored choice, else the system's.
export function currentTheme() {
  const stored = read(THEME_KEY);
  if (stored === "light" || stored === "dark") return stored;
  return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

export function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
}

export function setTheme(theme) {
  write(THEME_KEY, theme);
  applyTheme(theme);
  mirrorPrefs();
}

export function loadUnits() {
  let units = {};
  try {
    units = JSON.parse(read(UNITS_KEY) || "{}") || {};
  } catch {
    units = {};
  }
  setUnits(units);
  return units;
}

export function saveUnits(units) {
  write(UNITS_KEY, JSON.stringify(units));
  setUnits(units);
  mirrorPrefs();
}

// The cookie the server reads; written whenever the stored choices and it disagree.
export function mirrorPrefs() {
  const stored = read(THEME_KEY);
  const theme = stored === "light" || stored === "dark" ? stored : "auto";
  let units = {};
  try {
    units = JSON.parse(read(UNITS_KEY) || "{}") || {};
  } catch {
    units = {};
  }
  const value = [
    theme,
    units.temp === "F" ? "F" : "C",
    units.pressure === "psi" ? "psi" : "kPa",
    units.fuel === "gal" ? "gal" : "L",
  ].join(".");
  if (document.cookie.split("; ").includes(`${COOKIE}=${value}`)) return;
  const secure = window.location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `${COOKIE}=${value}; Path=/; Max-Age=${COOKIE_DAYS * 86400}; SameSite=Lax${secure}`;
}
