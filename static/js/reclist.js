// Sorting and filtering of the recordings list. Pure: no DOM, no fetch.

function text(value) {
  if (Array.isArray(value)) return value.join(", ");
  return typeof value === "string" ? value : "";
}

export function matchesFilter(rec, query, status) {
  if (status === "live" && !rec.live) return false;
  if (status === "ended" && rec.live) return false;
  const q = (query || "").trim().toLowerCase();
  if (!q) return true;
  return [rec.track, rec.car, text(rec.drivers)].some((v) => text(v).toLowerCase().includes(q));
}

// The recordings API calls it `size`; accept `size_bytes` as well.
export function sizeOf(rec) {
  return typeof rec.size_bytes === "number" ? rec.size_bytes : rec.size;
}

function sortValue(rec, key) {
  const v = key === "size" ? sizeOf(rec) : rec[key];
  if (key === "drivers") return text(v).toLowerCase();
  if (key === "live") return v ? 1 : 0;
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string") return v.toLowerCase();
  return null;
}

// A new sorted array; missing values always sort last.
export function sortRecordings(list, key, descending) {
  const dir = descending ? -1 : 1;
  return [...list].sort((a, b) => {
    const x = sortValue(a, key);
    const y = sortValue(b, key);
    if (x === null && y === null) return 0;
    if (x === null) return 1;
    if (y === null) return -1;
    if (x < y) return -dir;
    if (x > y) return dir;
    return 0;
  });
}
