// Starts the dashboard's scripts once the page's first frame is on screen.
// The page arrives with its values already written in (the server's, racedash/pagefields.py), so
// its first frame needs no script; if the browser ran socket.io, uPlot and the dashboard module as
// soon as the HTML was parsed, that frame would wait for them (~50 ms here). Their files are
// fetched in parallel all along (the page's preload links); this only moves when they run: the
// classic scripts in order, then the module (which expects both: `io` and `uPlot`).
(() => {
  const me = document.currentScript;
  const scripts = (me.dataset.scripts || "").split(" ").filter(Boolean);
  const moduleUrl = me.dataset.module;
  const imports = (me.dataset.imports || "").split(" ").filter(Boolean);
  const styles = (me.dataset.styles || "").split(" ").filter(Boolean);

  const preload = (href) => {
    const link = document.createElement("link");
    link.rel = "modulepreload";
    link.href = href;
    document.head.appendChild(link);
  };

  const load = (src) =>
    new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.async = false; // run in the order given
      script.onload = resolve;
      script.onerror = () => reject(new Error(`${src} did not load`));
      document.head.appendChild(script);
    });

  let started = false;
  const start = () => {
    if (started) return;
    if (document.readyState === "loading") {
      // An async script can run before the page is parsed: the cards and fields are not all there yet.
      document.addEventListener("DOMContentLoaded", start, { once: true });
      return;
    }
    started = true;
    const more = document.getElementById("dashboard-more");
    if (more) more.replaceWith(more.content);
    // The module and everything it imports, all at once (import() alone would find them a level at a time).
    for (const href of [moduleUrl, ...imports]) preload(href);
    for (const href of styles) {
      const link = document.createElement("link");
      link.rel = "stylesheet";
      link.href = href;
      document.head.appendChild(link);
    }
    Promise.all(scripts.map(load))
      .then(() => import(moduleUrl))
      .catch((err) => {
        console.error("racedash: the page's scripts did not start:", err);
        const badge = document.getElementById("conn-badge");
        if (badge) badge.textContent = "scripts did not load: reload the page";
      });
  };
  // When: once the browser has shown the first frame (its first contentful paint, reported after
  // the frame is presented), not just painted it on the main thread: on a 2-core machine the
  // scripts, started earlier, competed with that frame's rasterisation (10-30 ms later on screen,
  // benchmarks/README.md "Page load"). Without Paint Timing: the frame after the next animation
  // frame. A tab opened in the background gets no frames: it starts at once; 2 s at the latest.
  const paints = typeof PerformanceObserver === "function" && (PerformanceObserver.supportedEntryTypes || []).includes("paint");
  if (document.visibilityState === "hidden") {
    start();
  } else if (paints) {
    const observer = new PerformanceObserver((list) => {
      if (list.getEntries().some((entry) => entry.name === "first-contentful-paint")) {
        observer.disconnect();
        setTimeout(start, 0);
      }
    });
    observer.observe({ type: "paint", buffered: true });
  } else {
    requestAnimationFrame(() => setTimeout(start, 0));
  }
  setTimeout(start, 2000);
})();
