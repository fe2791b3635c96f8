// A batch's card: its tally, an overall bar, its upload progress and elapsed time, "Download all", and a
// disclosure (<details>: a native button for the keyboard and screen readers) holding its photos' task cards.
import {zipUrl} from "./batches.js";
import {h, icon} from "./cards.js";
import {formatElapsed, t} from "./i18n.js";

const toMegabytes = (bytes) => (bytes / (1024 * 1024)).toFixed(1).replace(/\.0$/, "");

/** A new, empty batch card; renderBatchCard fills it. */
export function createBatchCard(batch) {
  const titleId = `batch-${batch}-title`;
  return h("li", {class: "batch", dataset: {batch}, "aria-labelledby": titleId},
    h("div", {class: "batch-head"},
      h("h3", {class: "batch-title", id: titleId}),
      h("p", {class: "batch-counts"}),
      h("div", {class: "progress batch-bar", role: "progressbar", "aria-label": t("batch.progress"),
        "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": 0},
      h("span", {class: "progress-fill", style: {width: "0%"}})),
      h("p", {class: "batch-upload", hidden: true}),
      h("p", {class: "batch-time card-meta"}, icon("clock", 14), h("span")),
      h("div", {class: "batch-actions"},
        h("a", {class: "button button--primary button--small batch-download", href: zipUrl({batch}), download: "",
          hidden: true}, icon("download", 16), h("span", {text: t("batch.download")})),
        h("button", {type: "button", class: "button button--secondary button--small", hidden: true,
          dataset: {batchAction: "stop"}}, t("batch.stop")))),
    h("details", {class: "batch-details"},
      h("summary", {text: t("batch.show")}),
      h("ul", {class: "batch-rows"}),
      h("ul", {class: "card-grid batch-tasks"})));
}

/** The list a batch card keeps its task cards in. */
export const batchTaskList = (card) => card.querySelector(".batch-tasks");

/**
 * Brings a batch card up to date from its summary (batches.batchSummary) and upload records. `now` is the
 * server's time (the tasks' times are the server's), `localNow` the page's (an upload pause is the page's).
 */
export function renderBatchCard(card, summary, records, {now, localNow}) {
  const set = (selector, text) => {
    const node = card.querySelector(selector);
    if (node.textContent !== text) node.textContent = text;
  };
  set(".batch-title", t("batch.title", {count: summary.total}));
  let counts = t("batch.counts", summary);
  if (summary.refused) counts += ` · ${t("batch.refused", {count: summary.refused})}`;
  set(".batch-counts", counts);
  const finished = summary.done + summary.failed + summary.refused;
  const percent = summary.total ? Math.round((finished / summary.total) * 100) : 0;
  const bar = card.querySelector(".batch-bar");
  bar.setAttribute("aria-valuenow", percent);
  bar.setAttribute("aria-valuetext", counts);
  bar.querySelector(".progress-fill").style.width = `${percent}%`;

  const upload = card.querySelector(".batch-upload");
  const tally = summary.uploads;
  upload.hidden = !tally || tally.queued === 0;
  if (!upload.hidden) {
    const text = tally.waitingUntil
      ? t("batch.upload_paused", {time: formatElapsed(tally.waitingUntil - localNow)})
      : t("batch.uploading", {sent: tally.sent + tally.refused, total: tally.total, mb: toMegabytes(tally.bytesSent),
        total_mb: toMegabytes(tally.bytes)});
    if (upload.textContent !== text) upload.textContent = text;
  }

  const time = card.querySelector(".batch-time span");
  if (summary.startedAt === null) {
    time.removeAttribute("data-elapsed");
    set(".batch-time span", "");
  } else if (summary.endedAt !== null) {
    time.removeAttribute("data-elapsed");
    set(".batch-time span", t("batch.took", {time: formatElapsed(summary.endedAt - summary.startedAt)}));
  } else {
    // Ticked each second with the task cards' own times (cards.tickElapsed).
    time.dataset.elapsed = new Date(summary.startedAt).toISOString();
    time.dataset.elapsedKey = "card.elapsed";
    set(".batch-time span", t("card.elapsed", {time: formatElapsed(now - summary.startedAt)}));
  }
  card.querySelector(".batch-time").hidden = summary.startedAt === null;
  card.querySelector(".batch-download").hidden = summary.done === 0;
  card.querySelector("[data-batch-action=stop]").hidden = !tally || tally.queued === 0;
  card.classList.toggle("is-settled", summary.settled);
  renderRows(card, records);
}

// One row per photo the server has no task for: still to send, or refused (with the server's words).
function renderRows(card, records) {
  const rows = records.filter((record) => record.state !== "done");
  const list = card.querySelector(".batch-rows");
  const wanted = rows.map((record) => `${record.key}:${record.state}`).join(",");
  if (list.dataset.shown === wanted) return;
  list.dataset.shown = wanted;
  list.replaceChildren(...rows.map((record) => h("li", {class: `batch-row batch-row--${record.state}`},
    icon(record.state === "refused" ? "alert" : "upload", 14),
    h("span", {class: "batch-row-name", text: record.name}),
    h("span", {class: "batch-row-state", text: record.state === "refused"
      ? t("batch.row_refused", {detail: record.detail ?? t("form.error.unknown")}) : t("batch.row_unsent")}))));
}
