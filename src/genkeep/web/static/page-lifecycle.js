// How a page keeps its TaskMonitor in step with the page's life, shared by the home page and the type pages.
//
// The monitor makes no request on an idle page, so it must hear when the user comes back: a task may have been
// started from another browser meanwhile (tabs of this browser tell each other at once, through the monitor's
// BroadcastChannel). Becoming visible and getting focus usually come together; the monitor's refresh() sends
// at most one list per interval, so together they make one request.

/** Wires `monitor` to the page: refreshed when shown or focused, stopped on pagehide, restarted from bfcache. */
export function followPageLifecycle(monitor) {
  const refreshIfShown = () => {
    if (document.visibilityState === "visible") monitor.refresh();
  };
  document.addEventListener("visibilitychange", refreshIfShown);
  addEventListener("focus", refreshIfShown);
  // Stopped while in the back/forward cache (no timer, closed channel), and started again when restored:
  // start() lists at once, which is the refresh a restored page needs.
  addEventListener("pagehide", () => monitor.stop());
  addEventListener("pageshow", (event) => {
    if (event.persisted) monitor.start();
  });
}
