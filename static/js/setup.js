// The game's car setup as a readable sheet, and what changed between two setups.
// Pure functions over the `setup` payload (carSetup.garageValues); no DOM.

export const CORNERS = ["FL", "FR", "RL", "RR"];

// Group of a setting, by its key; the first matching rule wins.
const GROUP_RULES = [
  ["Fuel & strategy", /FUEL|VIRTUAL_ENERGY|PITSTOP/],
  ["Engine & electronics", /TRACTION|ANTILOCK|ENGINE|ELECTRIC|REGEN|REV_LIMITER|TORQUE_SPLIT/],
  ["Aero & cooling", /WING|RADIATOR|BRAKE_DUCTS|FENDER/],
  ["Brakes", /BRAKE/],
  ["Tyres", /TIRE|COMPOUND|PRESSURE|CAMBER|TOE/],
  ["Differential", /DIFF/],
  ["Gearing", /GEAR|RATIO/],
  ["Suspension", /3RD|ANTISWAY|SPRING|BUMP|REBOUND|PACKERS|RIDEHEIGHT|SRUBBER|TENDER|CASTER|TRACK_BAR|WHEEL_TRACK|WEIGHT|CHASSIS/],
];
export const GROUP_ORDER = [...GROUP_RULES.map(([name]) => name), "Other"];

const WORDS = {
  ANTILOCKBRAKESYSTEMMAP: "ABS map",
  ANTILOCK: "ABS",
  ANTISWAY: "anti-roll bar",
  TRACTIONCONTROLMAP: "TC map",
  TRACTIONCONTROLPOWERCUTMAP: "TC power cut",
  TRACTIONCONTROLSLIPANGLEMAP: "TC slip angle",
  TOEIN: "toe-in",
  TOEOFFSET: "toe offset",
  FASTBUMP: "fast bump",
  SLOWBUMP: "slow bump",
  FASTREBOUND: "fast rebound",
  SLOWREBOUND: "slow rebound",
  TENDERSPRING: "tender spring",
  TENDERSPRINGTRAVEL: "tender spring travel",
  RIDEHEIGHT: "ride height",
  BRAKEDISC: "brake disc",
  BRAKEPAD: "brake pad",
  BRAKEMAP: "braking map",
  SRUBBER: "spring rubber",
  AUTODOWNSHIFT: "auto downshift",
  AUTOUPSHIFT: "auto upshift",
  PITSTOPS: "pit stops",
  PITSTOP: "pit stop",
  "3RD": "3rd",
  TIRE: "tyre",
  RPM: "RPM",
};

export function isSettingEntry(entry) {
  return entry !== null && typeof entry === "object" && !Array.isArray(entry) && ("stringValue" in entry || "value" in entry);
}

export function garageValues(setup) {
  const values = setup && setup.carSetup && setup.carSetup.garageValues;
  if (!values || typeof values !== "object") return {};
  const out = {};
  for (const [key, entry] of Object.entries(values)) {
    if (isSettingEntry(entry)) out[key] = entry;
  }
  return out;
}

// "FL" for a per-wheel key such as WM_CAMBER-W_FL, else null.
export function cornerOf(key) {
  const m = /-W_(FL|FR|RL|RR)$/.exec(key);
  return m ? m[1] : null;
}

function baseKey(key) {
  return key.replace(/-W_(FL|FR|RL|RR)$/, "");
}

export function settingGroup(key) {
  for (const [name, rule] of GROUP_RULES) {
    if (rule.test(key)) return name;
  }
  return "Other";
}

function capitalise(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : text;
}

export function settingLabel(key, entry = {}) {
  if (typeof entry.caption === "string" && entry.caption.trim()) {
    return capitalise(entry.caption.trim().toLowerCase());
  }
  const words = baseKey(key)
    .replace(/^(VM|WM)_/, "")
    .split("_")
    .filter(Boolean)
    .map((w) => WORDS[w] || w.toLowerCase());
  return capitalise(words.join(" "));
}

// The value as the game shows it in the garage.
export function displayValue(entry) {
  if (!entry) return "—";
  if (typeof entry.stringValue === "string" && entry.stringValue.trim() !== "") return entry.stringValue.trim();
  if (entry.value === undefined || entry.value === null) return "—";
  return String(entry.value);
}

function isNotApplicable(entry) {
  return entry.available === false || displayValue(entry) === "N/A";
}

// The sheet: [{group, rows: [{key, label, value}], corners: [{label, cells: {FL: {key, value}}}]}]
// Settings the car does not have (N/A, unavailable) are left out unless showAll.
export function setupSheet(setup, { showAll = false } = {}) {
  const groups = new Map(GROUP_ORDER.map((g) => [g, { group: g, rows: [], corners: new Map() }]));
  for (const [key, entry] of Object.entries(garageValues(setup))) {
    if (!showAll && isNotApplicable(entry)) continue;
    const group = groups.get(settingGroup(key));
    const corner = cornerOf(key);
    if (corner) {
      const base = baseKey(key);
      if (!group.corners.has(base)) group.corners.set(base, { label: settingLabel(key, entry), cells: {} });
      group.corners.get(base).cells[corner] = { key, value: displayValue(entry) };
    } else {
      group.rows.push({ key, label: settingLabel(key, entry), value: displayValue(entry) });
    }
  }
  const sheet = [];
  for (const g of groups.values()) {
    if (!g.rows.length && !g.corners.size) continue;
    g.rows.sort((a, b) => a.label.localeCompare(b.label));
    sheet.push({ group: g.group, rows: g.rows, corners: [...g.corners.values()] });
  }
  return sheet;
}

// Settings whose shown value differs: [{key, label, group, old, new}], sorted by group then label.
// A setting that appears or disappears counts as a change ("—" on the missing side).
export function diffSetups(oldSetup, newSetup) {
  const before = garageValues(oldSetup);
  const after = garageValues(newSetup);
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  const changes = [];
  for (const key of keys) {
    const a = before[key];
    const b = after[key];
    const oldValue = a ? displayValue(a) : "—";
    const newValue = b ? displayValue(b) : "—";
    const rawChanged = a && b && a.value !== b.value;
    if (oldValue === newValue && !rawChanged) continue;
    const entry = b || a;
    const corner = cornerOf(key);
    changes.push({
      key,
      label: settingLabel(key, entry) + (corner ? ` ${corner}` : ""),
      group: settingGroup(key),
      old: oldValue,
      new: newValue,
    });
  }
  const order = (g) => GROUP_ORDER.indexOf(g);
  changes.sort((x, y) => order(x.group) - order(y.group) || x.label.localeCompare(y.label));
  return changes;
}
