// Counts the console's countdowns ("due in", "expires in") down each second between the
// page's own refreshes. Everything else works without script.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const format = (seconds) => {
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    if (h) return `${h} h ${String(m).padStart(2, "0")} min`;
    if (m) return `${m} min ${String(s).padStart(2, "0")} s`;
    return `${s} s`;
  };
  const counters = [...document.querySelectorAll(".countdown[data-seconds]")];
  if (!counters.length) return;
  const started = Date.now();
  setInterval(() => {
    const gone = Math.floor((Date.now() - started) / 1000);
    for (const el of counters) {
      const left = Math.max(0, Number(el.dataset.seconds) - gone);
      el.textContent = el.textContent.replace(/(due in|expires in) .*/, `$1 ${format(left)}`);
    }
  }, 1000);
});
