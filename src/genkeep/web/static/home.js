// The home page: recent results across the three types, and how many of each are still generating.
import {api, taskListPath} from "./api.js";
import {createCard} from "./cards.js";
import {config, t} from "./i18n.js";
import {ResultViewer} from "./viewer.js";

const recent = document.getElementById("recent");
const viewer = new ResultViewer({items: () => [...recent.querySelectorAll(".card")], typePaths: config.typePaths});

async function showRecent() {
  try {
    const page = await api(taskListPath({status: "completed", limit: 8}));
    for (const task of page.items) {
      recent.append(createCard(task, {withType: true, typePath: config.typePaths[task.type]}));
    }
    document.getElementById("recent-empty").hidden = page.items.length > 0;
  } catch {
    const empty = document.getElementById("recent-empty");
    empty.textContent = t("home.recent_error");
    empty.hidden = false;
  } finally {
    recent.setAttribute("aria-busy", "false");
    viewer.listChanged();
  }
}

async function showBusy() {
  try {
    const page = await api(taskListPath({status: ["pending", "processing"], limit: 100}));
    const counts = {};
    for (const task of page.items) counts[task.type] = (counts[task.type] ?? 0) + 1;
    for (const badge of document.querySelectorAll("[data-busy-type]")) {
      const count = counts[badge.dataset.busyType] ?? 0;
      badge.textContent = t("home.busy", {count});
      badge.hidden = count === 0;
    }
  } catch {
    // The counts are a nicety; the cards work without them.
  }
}

viewer.start();
showRecent();
showBusy();
