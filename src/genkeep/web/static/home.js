// The home page: recent results across the three types, and how many of each are still generating.
import {api, taskListPath} from "./api.js";
import {createCard} from "./cards.js";
import {announce, config, t} from "./i18n.js";
import {followPageLifecycle} from "./page-lifecycle.js";
import {TaskMonitor} from "./recovery.js";
import {ResultViewer} from "./viewer.js";

const RECENT = 8;
const recent = document.getElementById("recent");
const recentEmpty = document.getElementById("recent-empty");
const viewer = new ResultViewer({items: () => [...recent.querySelectorAll(".card")], typePaths: config.typePaths});

function addRecent(task, {top = false} = {}) {
  if (recent.querySelector(`[data-id="${CSS.escape(task.id)}"]`)) return;
  const card = createCard(task, {withType: true, typePath: config.typePaths[task.type]});
  if (top) recent.prepend(card);
  else recent.append(card);
  while (recent.children.length > RECENT) recent.lastElementChild.remove();
  recentEmpty.hidden = true;
  viewer.listChanged();
}

async function showRecent() {
  try {
    const page = await api(taskListPath({status: "completed", limit: RECENT}));
    for (const task of page.items) addRecent(task);
    recentEmpty.hidden = recent.children.length > 0;
  } catch {
    recentEmpty.textContent = t("home.recent_error");
    recentEmpty.hidden = false;
  } finally {
    recent.setAttribute("aria-busy", "false");
    viewer.listChanged();
  }
}

// The "n generating" badges follow every type's unfinished tasks: the monitor polls every 2 s while there are
// any, and the page makes no request while there are none (a generation started in another tab is told of).
function showBusy() {
  const counts = {};
  for (const task of monitor.tasks) counts[task.type] = (counts[task.type] ?? 0) + 1;
  for (const badge of document.querySelectorAll("[data-busy-type]")) {
    const count = counts[badge.dataset.busyType] ?? 0;
    badge.textContent = t("home.busy", {count});
    badge.hidden = count === 0;
  }
}

const banner = document.getElementById("connection-banner");

const monitor = new TaskMonitor({
  type: null,
  onTask: showBusy,
  onFinish: (task) => {
    showBusy();
    if (task.status === "completed") addRecent(task, {top: true});
  },
  onGone: (id) => {
    showBusy();
    recent.querySelector(`[data-id="${CSS.escape(id)}"]`)?.remove();
    viewer.listChanged();
  },
  onConnection: (state) => {
    banner.hidden = state !== "reconnecting";
    announce(t(state === "reconnecting" ? "announce.reconnecting" : "announce.reconnected"));
  },
});

viewer.start();
showRecent();
followPageLifecycle(monitor);
monitor.start().then(() => {
  showBusy();
  document.documentElement.dataset.recovered = "true";
});

// Exposed for people debugging in the console and for the browser tests.
window.genkeep = {monitor, viewer};
