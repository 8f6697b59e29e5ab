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
  // The next frame's rendering runs right after its animation frame callbacks; a timer set from
  // one fires after it. A page opened in a background tab gets no frames: 200 ms at the latest.
  requestAnimationFrame(() => setTimeout(start, 0));
  setTimeout(start, 200);
})();
