// Keyboard shortcuts of the replay transport, and the help overlay that lists them. keyIntent
// is pure (tested in the browser): a key press to what the user wants; dashboard.js decides
// what that means for the replay (the server's replay_control).

export const SHORTCUTS = [
  ["Space", "play / pause"],
  ["← / →", "back / forward 5 s"],
  ["Shift + ← / →", "previous / next lap"],
  ["[ / ]", "slower / faster"],
  ["Home / End", "start / end of the recording"],
  ["?", "show / hide this help"],
];

// {key, shiftKey} → "playPause" | "back" | "forward" | "prevLap" | "nextLap" | "slower" |
// "faster" | "start" | "end" | "help" | null.
export function keyIntent({ key, shiftKey = false }) {
  if (key === " " || key === "Spacebar") return "playPause";
  if (key === "ArrowLeft") return shiftKey ? "prevLap" : "back";
  if (key === "ArrowRight") return shiftKey ? "nextLap" : "forward";
  if (key === "[") return "slower";
  if (key === "]") return "faster";
  if (key === "Home") return "start";
  if (key === "End") return "end";
  if (key === "?") return "help";
  return null;
}

// Typing in a field (the target laps, a select) must not drive the replay.
function typing(target) {
  if (!target || !target.tagName) return false;
  return ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName) || target.isContentEditable;
}

// Calls onIntent(intent) for each shortcut; returns whether the page used it (then the browser's
// own action, e.g. Space scrolling the page, is prevented). Ctrl/Alt/Meta combinations are the
// browser's.
export function bindShortcuts(onIntent) {
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.altKey || event.metaKey || typing(event.target)) return;
    const intent = keyIntent(event);
    if (intent && onIntent(intent)) event.preventDefault();
  });
}

export function fillHelp(list) {
  const items = [];
  for (const [keys, what] of SHORTCUTS) {
    const dt = document.createElement("dt");
    const kbd = document.createElement("kbd");
    kbd.textContent = keys;
    dt.append(kbd);
    const dd = document.createElement("dd");
    dd.textContent = what;
    items.push(dt, dd);
  }
  list.replaceChildren(...items);
}
