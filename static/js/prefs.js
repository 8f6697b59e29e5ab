// The viewer's display preferences, remembered in localStorage: light or dark (following the
// system's prefers-color-scheme until the user picks one) and units (°C/°F, kPa/psi, L/gal,
// applied by format.js's display functions).

import { setUnits } from "./format.js";

const THEME_KEY = "racedash.theme";
const UNITS_KEY = "racedash.units";

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
}
