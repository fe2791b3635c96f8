// A generation type's page: the form, the tasks in progress (kept by the recovery client) and the history.
import {ApiError, api, newIdempotencyKey, taskListPath} from "./api.js";
import {batchTaskList, createBatchCard, renderBatchCard} from "./batch-card.js";
import {BatchBook, batchSummary, newBatchId, zipUrl} from "./batches.js";
import {
  cardTask, cardTitle, createCard, h, icon, inlineIcons, isBusy, isCanceled, renderCard, tickElapsed,
} from "./cards.js";
import {handoffFileName, handoffFromHash, hashWithoutHandoff} from "./handoff.js";
import {announce, config, formatTime, lang, t, taskErrorText, typeLabel} from "./i18n.js";
import {followPageLifecycle} from "./page-lifecycle.js";
import {TaskMonitor} from "./recovery.js";
import {UploadQueue, openUploadStore} from "./uploads.js";
import {ResultViewer} from "./viewer.js";

const TYPE = config.type;
const HISTORY_PAGE = 12;
const ACCEPTED = config.acceptedTypes;
const [, MAX_IMAGES] = config.imageCounts[TYPE];
const MAX_PROMPT = config.maxPromptChars;
const MAX_BATCH = config.maxBatchFiles ?? 210;
const MAX_ZIP_IDS = config.maxZipIds ?? 200;
// How long a finished card stays in place, showing its image, before it glides to the top of the history.
const SETTLE_MS = 1200;
const reducedMotion = matchMedia("(prefers-reduced-motion: reduce)");

const $ = (selector, root = document) => root.querySelector(selector);
const progressList = $("#in-progress");
const historyList = $("#history");

// One clock for the page's timers: the monitor's polling. The "running for" texts count from the server's time
// instead (serverNow below): a task's created_at is the server's, and this browser's clock may be minutes off.
const clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle),
};

const findCard = (list, id) => list.querySelector(`[data-id="${CSS.escape(id)}"]`);

// The viewer browses the finished cards in the order they are shown: any still settling in place, then history.
const viewer = new ResultViewer({
  items: () => [...document.querySelectorAll(
    "#in-progress .card[data-status=completed], #in-progress .card[data-status=failed], #history .card")],
  hasMore: () => Boolean(historyCursor),
  loadMore: () => loadHistory({more: true}),
  retry: async (id) => Boolean(await startRetry(id)),
  typePaths: config.typePaths,
});

// ---------------------------------------------------------------------------------------------------------
// Moving cards without jumps: measure, change the DOM, then animate each card from where it was (FLIP).

function flip(mutate) {
  const cards = [...document.querySelectorAll(".card-grid > .card")];
  const before = new Map(cards.map((card) => [card, card.getBoundingClientRect()]));
  mutate();
  if (reducedMotion.matches) return;
  for (const card of document.querySelectorAll(".card-grid > .card")) {
    const first = before.get(card);
    if (!first) {
      card.animate([{opacity: 0, transform: "scale(.96)"}, {opacity: 1, transform: "none"}],
        {duration: 260, easing: "ease-out"});
      continue;
    }
    const last = card.getBoundingClientRect();
    const dx = first.left - last.left;
    const dy = first.top - last.top;
    if (dx || dy) {
      card.animate([{transform: `translate(${dx}px, ${dy}px)`}, {transform: "none"}],
        {duration: 420, easing: "cubic-bezier(.2, .7, .2, 1)"});
    }
  }
}

function keepFocus(card, move) {
  const focused = card.contains(document.activeElement) ? document.activeElement : null;
  move();
  focused?.focus({preventScroll: true});
}

function updateSections() {
  const busy = progressList.children.length;
  $("#progress-empty").hidden = busy > 0;
  const badge = $("#progress-count");
  badge.hidden = busy === 0;
  badge.textContent = String(busy);
  $("#history-empty").hidden = historyList.children.length > 0 || historyList.getAttribute("aria-busy") === "true"
    || !$("#history-error").hidden;
  viewer.listChanged();
}

// Newest first, by created_at, wherever a card comes from (the list, this tab, a retry).
function insertByCreated(list, card, task) {
  const created = Date.parse(task.created_at);
  const later = [...list.children].find((other) => Date.parse(other.dataset.created) < created);
  card.dataset.created = task.created_at;
  list.insertBefore(card, later ?? null);
}

// ---------------------------------------------------------------------------------------------------------
// Cards: every card of this page is made and updated here, so a finished one gets its selection checkbox.

function syncSelect(card, task) {
  const box = card.querySelector("[data-select]");
  if (isBusy(task) || box) return;
  const name = cardTitle(task) ?? `${typeLabel(task.type)}, ${formatTime(task.finished_at ?? task.updated_at)}`;
  card.querySelector(".card-body").prepend(h("label", {class: "card-select"},
    h("input", {type: "checkbox", dataset: {select: task.id}, "aria-label": t("card.select", {name})})));
}

function makeCard(task) {
  const card = createCard(task, {now: serverNow()});
  syncSelect(card, task);
  return card;
}

function updateCard(card, task) {
  renderCard(card, task, {now: serverNow()});
  syncSelect(card, task);
}

// ---------------------------------------------------------------------------------------------------------
// The recovery client's callbacks.

function onTask(task) {
  if (seeBatchTask(task)) return; // its batch's card shows it
  const card = findCard(progressList, task.id);
  if (card) {
    updateCard(card, task);
    return;
  }
  const fresh = makeCard(task);
  flip(() => insertByCreated(progressList, fresh, task));
  updateSections();
}

function onFinish(task) {
  if (seeBatchTask(task)) return; // told once, when the whole batch is done
  if (task.status === "completed") announce(t("announce.completed", {prompt: task.prompt || t(`type.${task.type}`)}));
  else if (isCanceled(task)) announce(t("card.canceled_title"));
  else announce(t("announce.failed", {message: taskErrorText(task.error)}));
  const card = findCard(progressList, task.id);
  if (!card) {
    addToHistory(task, {top: true});
    return;
  }
  updateCard(card, task);
  card.classList.add("is-finishing");
  setTimeout(() => moveToHistory(card), reducedMotion.matches ? 0 : SETTLE_MS);
}

function moveToHistory(card) {
  if (!card.isConnected || card.parentElement !== progressList) return;
  card.classList.remove("is-finishing");
  keepFocus(card, () => flip(() => {
    findCard(historyList, card.dataset.id)?.remove();
    historyList.prepend(card);
    updateSections();
  }));
}

// Deleted: here (a 404 on cancel), or in another tab, whether the card is in progress or in the history.
function onGone(id) {
  book.gone(id);
  unselect([id]);
  const card = findCard(progressList, id) ?? findCard(historyList, id);
  if (card) flip(() => card.remove());
  updateSections();
}

const banner = $("#connection-banner");

function onConnection(state) {
  banner.hidden = state !== "reconnecting";
  announce(t(state === "reconnecting" ? "announce.reconnecting" : "announce.reconnected"));
  // "The studio is not answering" was true when it was said; once it answers again it would only mislead.
  if (state !== "reconnecting" && unreachableShown) {
    unreachableShown = false;
    showFieldError("form", null);
  }
}

const monitor = new TaskMonitor({type: TYPE, clock, onTask, onFinish, onGone, onConnection});
const serverNow = () => monitor.serverNow();

// ---------------------------------------------------------------------------------------------------------
// Batches: many photos from one drop (or a CREATE's variations), each its own task, told on one card. The
// upload queue (uploads.js) sends the photos; the monitor's one list per tick keeps their tasks current; a batch
// this page did not start is listed once (batches.js) so its finished photos are counted too.

const book = new BatchBook({type: TYPE, onChange: scheduleBatch});
let queue = null; // once the store is open (startUploads)
const listingTried = new Map(); // batch -> when its listing was last asked for (a failed one is asked again)
const LISTING_RETRY_MS = 10000;

const findBatch = (batch) => document.querySelector(`.batch[data-batch="${CSS.escape(batch)}"]`);

/** A task of a batch goes to the batch's card (true); a task alone is the page's usual card (false). */
function seeBatchTask(task) {
  const batch = book.see(task);
  if (!batch) return false;
  loadBatch(batch);
  return true;
}

function loadBatch(batch) {
  const tried = listingTried.get(batch);
  if (tried !== undefined && clock.now() - tried < LISTING_RETRY_MS) return;
  listingTried.set(batch, clock.now());
  book.load(batch).then(() => listingTried.set(batch, Infinity), () => {});
}

// Many changes at once (one list answer tells forty tasks) make one render per batch.
const dirtyBatches = new Set();

function scheduleBatch(batch) {
  if (!dirtyBatches.size) queueMicrotask(() => {
    const batches = [...dirtyBatches];
    dirtyBatches.clear();
    for (const one of batches) renderBatch(one);
  });
  dirtyBatches.add(batch);
}

function renderBatch(batch) {
  const records = queue?.items(batch) ?? [];
  const tasks = book.tasks(batch);
  let card = findBatch(batch);
  if (!tasks.length && !records.length) {
    if (card) flip(() => card.remove());
    updateSections();
    return;
  }
  if (!card) {
    card = createBatchCard(batch);
    flip(() => progressList.prepend(card));
  }
  const summary = batchSummary(tasks, records, records.length ? queue.progress(batch) : null);
  renderBatchCard(card, summary, records, {now: serverNow(), localNow: clock.now()});
  const list = batchTaskList(card);
  for (const task of tasks) {
    const shown = findCard(document, task.id);
    if (shown?.parentElement === list) {
      if (cardTask(shown) !== task) updateCard(shown, task);
      continue;
    }
    shown?.remove(); // a loose card of it (a history page listed it before its batch was known)
    list.append(makeCard(task));
  }
  if (summary.settled && card.parentElement === progressList && !card.dataset.settling) settleBatch(card, summary);
  updateSections();
}

function settleBatch(card, summary) {
  card.dataset.settling = "true";
  announce(t("announce.batch_done", {done: summary.done, failed: summary.failed + summary.refused}));
  setTimeout(() => {
    delete card.dataset.settling;
    if (!card.isConnected || card.parentElement !== progressList) return;
    keepFocus(card, () => flip(() => {
      historyList.prepend(card);
      updateSections();
    }));
  }, reducedMotion.matches ? 0 : SETTLE_MS);
}

// Where the queue is kept: IndexedDB, or (a private window that refuses it) the page's memory, which still
// retries through a bad network but not through a reload.
function memoryStore() {
  const records = new Map();
  return {
    getAll: async () => [...records.values()],
    get: async (key) => records.get(key),
    put: async (record) => void records.set(record.key, record),
    delete: async (key) => void records.delete(key),
  };
}

async function startUploads() {
  let store;
  try {
    store = await openUploadStore(TYPE);
  } catch {
    store = memoryStore();
  }
  queue = new UploadQueue({
    store, headers: {"Accept-Language": lang}, onChange: scheduleBatch,
    onCreated: (task) => {
      book.see(task);
      monitor.watch(task);
    },
    onRefused: (record) => announce(t("announce.photo_refused", {name: record.name,
      detail: record.detail ?? t("form.error.unknown")})),
  });
  await queue.start();
  let unsent = 0;
  for (const batch of queue.batches()) {
    const {queued} = queue.progress(batch);
    // A batch whose photos were all sent before this page: its tasks are the monitor's and the history's now.
    if (!queued) {
      await queue.dismiss(batch);
      continue;
    }
    unsent += queued;
    loadBatch(batch);
    scheduleBatch(batch);
  }
  if (unsent) announce(t("announce.uploads_resumed", {count: unsent}));
}

const uploadsReady = startUploads();

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-batch-action=stop]");
  const batch = button?.closest(".batch")?.dataset.batch;
  if (!batch) return;
  queue?.cancel(batch);
  button.closest(".batch").querySelector(".batch-details summary")?.focus(); // the button hides itself
});

// ---------------------------------------------------------------------------------------------------------
// History: this type's finished tasks, newest first, paged with the cursor.

let historyCursor = null;
const loadMore = $("#load-more");

function addToHistory(task, {top = false} = {}) {
  if (findCard(historyList, task.id) || findCard(progressList, task.id)) return;
  const card = makeCard(task);
  card.dataset.created = task.created_at;
  if (top) flip(() => historyList.prepend(card));
  else historyList.append(card);
}

async function loadHistory({more = false} = {}) {
  loadMore.disabled = true;
  loadMore.textContent = t("history.loading");
  $("#history-error").hidden = true;
  try {
    const page = await api(taskListPath({
      type: TYPE, status: ["completed", "failed"], limit: HISTORY_PAGE, cursor: more ? historyCursor : null,
    }));
    for (const task of page.items) addToHistory(task);
    historyCursor = page.next_cursor;
  } catch {
    $("#history-error").hidden = false;
  } finally {
    historyList.setAttribute("aria-busy", "false");
    loadMore.disabled = false;
    loadMore.textContent = t("history.more");
    loadMore.hidden = !historyCursor;
    updateSections();
  }
}

loadMore.addEventListener("click", () => loadHistory({more: true}));
$("#history-retry").addEventListener("click", () => loadHistory({more: historyCursor !== null}));

// ---------------------------------------------------------------------------------------------------------
// Card actions: cancel, retry, delete.

const confirmDialog = $("#confirm-delete");

function confirmDelete() {
  return new Promise((resolve) => {
    confirmDialog.returnValue = "";
    confirmDialog.addEventListener("close", () => resolve(confirmDialog.returnValue === "delete"), {once: true});
    confirmDialog.showModal();
  });
}

async function cancelTask(card, button) {
  const id = card.dataset.id;
  button.disabled = true;
  try {
    monitor.watch(await api(`/api/tasks/${encodeURIComponent(id)}/cancel`, {method: "POST"}));
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) {
      // It finished meanwhile: show how it ended.
      monitor.watch(await api(`/api/tasks/${encodeURIComponent(id)}`).catch(() => null));
    } else if (error instanceof ApiError && error.status === 404) {
      monitor.deleted(id);
      onGone(id);
    } else {
      announce(error.detail ?? t("form.error.network"));
      button.disabled = false;
    }
  }
}

/** Starts a failed task again: the new task, or null (the reason is announced). */
async function startRetry(id) {
  try {
    const task = await api(`/api/tasks/${encodeURIComponent(id)}/retry`, {method: "POST"});
    monitor.watch(task);
    announce(t("announce.started"));
    return task;
  } catch (error) {
    announce(error.detail ?? t("form.error.network"));
    return null;
  }
}

async function retryTask(card, button) {
  button.disabled = true;
  await startRetry(card.dataset.id);
  button.disabled = false;
}

async function deleteTask(card, button) {
  if (!(await confirmDelete())) {
    button.focus();
    return;
  }
  try {
    await api(`/api/tasks/${encodeURIComponent(card.dataset.id)}`, {method: "DELETE"});
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) {
      announce(error.detail ?? t("form.error.network"));
      button.focus();
      return;
    }
  }
  monitor.deleted(card.dataset.id); // the page's other tabs drop the card too
  unselect([card.dataset.id]);
  book.gone(card.dataset.id);
  // Focus goes to the neighbouring card, so a keyboard user keeps their place in the history.
  const neighbour = card.nextElementSibling ?? card.previousElementSibling;
  flip(() => card.remove());
  updateSections();
  (neighbour?.querySelector("[data-action=delete]") ?? $("#history-title")).focus?.();
  announce(t("announce.deleted"));
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-action]");
  const card = button?.closest(".card");
  if (!card) return;
  const action = button.dataset.action;
  if (action === "cancel") cancelTask(card, button);
  else if (action === "retry") retryTask(card, button);
  else if (action === "delete") deleteTask(card, button);
});

// ---------------------------------------------------------------------------------------------------------
// Selection: a checkbox on each finished card; the bar downloads the selected results as one ZIP or deletes
// them (one confirmation for all; each delete is its own request, and one that fails is told, not fatal).

const selected = new Set();
const selectionBar = $("#selection-bar");

function selectedCards() {
  return [...selected].map((id) => findCard(document, id)).filter(Boolean);
}

function updateSelection() {
  selectionBar.hidden = selected.size === 0;
  $("#selection-count").textContent = t("select.count", {count: selected.size});
  const completed = selectedCards().filter((card) => cardTask(card)?.status === "completed")
    .map((card) => card.dataset.id);
  const download = $("#selection-download");
  const tooMany = completed.length > MAX_ZIP_IDS;
  download.hidden = completed.length === 0 || tooMany;
  download.href = zipUrl({ids: completed});
  const note = $("#selection-note");
  note.hidden = !tooMany;
  note.textContent = tooMany ? t("select.zip_limit", {max: MAX_ZIP_IDS}) : "";
}

function unselect(ids) {
  let changed = false;
  for (const id of ids) changed = selected.delete(id) || changed;
  if (changed) updateSelection();
}

document.addEventListener("change", (event) => {
  const box = event.target.closest?.("[data-select]");
  if (!box) return;
  if (box.checked) selected.add(box.dataset.select);
  else selected.delete(box.dataset.select);
  box.closest(".card")?.classList.toggle("is-selected", box.checked);
  updateSelection();
});

function clearSelection() {
  for (const box of document.querySelectorAll("[data-select]:checked")) {
    box.checked = false;
    box.closest(".card")?.classList.remove("is-selected");
  }
  selected.clear();
  updateSelection();
}

$("#selection-clear").addEventListener("click", () => {
  clearSelection();
  $("#history-title").focus?.();
});

// Three at a time: quick for forty, and gentle with the server.
async function deleteAll(ids, onEach) {
  const failures = [];
  let next = 0;
  let finished = 0;
  const one = async () => {
    while (next < ids.length) {
      const id = ids[next++];
      try {
        await api(`/api/tasks/${encodeURIComponent(id)}`, {method: "DELETE"});
        onEach(id, true);
      } catch (error) {
        const gone = error instanceof ApiError && error.status === 404; // already gone: what was asked
        if (!gone) failures.push(error.detail ?? t("form.error.network"));
        onEach(id, gone);
      }
      finished += 1;
      $("#selection-count").textContent = t("announce.deleting", {n: finished, count: ids.length});
    }
  };
  await Promise.all([one(), one(), one()]);
  return failures;
}

$("#selection-delete").addEventListener("click", async () => {
  const ids = [...selected];
  if (!ids.length) return;
  const title = $("#confirm-title");
  const body = $("#confirm-body");
  const texts = [title.textContent, body.textContent];
  title.textContent = t("confirm.delete_many_title", {count: ids.length});
  body.textContent = t("confirm.delete_many_body");
  const confirmed = await confirmDelete();
  [title.textContent, body.textContent] = texts;
  if (!confirmed) {
    $("#selection-delete").focus();
    return;
  }
  const failures = await deleteAll(ids, (id, deleted) => {
    if (!deleted) return;
    monitor.deleted(id);
    book.gone(id);
    selected.delete(id);
    findCard(document, id)?.remove();
  });
  updateSections();
  updateSelection();
  const deleted = ids.length - failures.length;
  if (deleted) announce(t("announce.deleted_many", {count: deleted}));
  if (failures.length) announce(t("announce.delete_some_failed", {count: failures.length, detail: failures[0]}));
  (selected.size ? $("#selection-delete") : $("#history-title")).focus?.();
});

// ---------------------------------------------------------------------------------------------------------
// The form.

const form = $("#task-form");
const promptInput = $("#prompt");
const submitButton = $("#submit");
const slots = {}; // slot name -> File | null (WHITE_BACKGROUND: product; CLOTHING_CHANGE: person, garment)
let references = []; // CREATE: [{file, url}]
let idempotencyKey = null;
let unreachableShown = false; // the form says the studio did not answer; cleared when it answers again

function formChanged() {
  // A changed form is a new submission; an unchanged one sent twice (double click, a lost answer) is the same.
  idempotencyKey = null;
}

function updateCounter() {
  if (!promptInput) return;
  const counter = $("#prompt-counter");
  const length = promptInput.value.length;
  counter.textContent = t("form.counter", {count: length, max: MAX_PROMPT});
  counter.classList.toggle("is-near", length > MAX_PROMPT * 0.9);
}

promptInput?.addEventListener("input", () => {
  updateCounter();
  formChanged();
  showFieldError("prompt", null);
});

function showFieldError(field, message) {
  const node = $(`#${field}-error`) ?? $("#form-error");
  node.textContent = message ?? "";
  node.hidden = !message;
  const control = field === "prompt" ? promptInput : form.querySelector(".file-input");
  if (control && node.id !== "form-error") control.toggleAttribute("aria-invalid", Boolean(message));
  node.closest(".field")?.classList.toggle("has-error", Boolean(message));
}

function clearErrors() {
  for (const field of ["prompt", "reference_images", "form"]) showFieldError(field, null);
}

// Files still being checked: Generate waits for them, so a photo chosen just before it is not missed.
const pendingChecks = new Set();

function checking(promise) {
  pendingChecks.add(promise);
  promise.finally(() => pendingChecks.delete(promise));
  return promise;
}

const toMegabytes = (bytes) => (bytes / (1024 * 1024)).toFixed(1).replace(/\.0$/, "");

/** Why the server would refuse this file, checked at once in the page (config: the server's own limits), or null.
 * The server checks everything again; this only spares the seller a refusal after Generate. */
async function fileProblem(file) {
  const name = file.name;
  if (!ACCEPTED.includes(file.type)) return t("form.error.format", {name});
  if (file.size > config.maxUploadBytes) {
    return t("form.error.file_too_large", {name, size: toMegabytes(file.size), max: toMegabytes(config.maxUploadBytes)});
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(file); // a text file named photo.jpg is refused here, not after Generate
  } catch {
    return t("form.error.not_image", {name});
  }
  const {width, height} = bitmap;
  bitmap.close();
  if (Math.min(width, height) < config.minImageSide) {
    return t("form.error.too_small", {name, width, height, min: config.minImageSide});
  }
  if (width * height > config.maxImagePixels) {
    return t("form.error.too_many_pixels", {name, max: config.maxImagePixels / 1e6});
  }
  return null;
}

async function acceptable(files) {
  const problems = await Promise.all(files.map(fileProblem));
  const refused = problems.filter(Boolean);
  if (refused.length) showFieldError("reference_images", refused.join(" "));
  return files.filter((file, index) => !problems[index]);
}

// CREATE: up to four reference images in a row of previews.
function renderReferences() {
  const list = $("#multi-previews");
  if (!list) return;
  list.replaceChildren(...references.map((ref, index) => {
    const name = t("card.reference", {n: index + 1});
    return h("li", {class: "multi-preview"},
      h("img", {src: ref.url, alt: `${name}: ${ref.file.name}`}),
      h("button", {type: "button", class: "icon-button remove-image", "aria-label": t("form.remove", {name}),
        dataset: {removeIndex: index}}, icon("close", 16)));
  }));
  const full = references.length >= MAX_IMAGES;
  $("[data-dropzone=references]").hidden = full;
  $("#refs-count").textContent = references.length ? `${references.length} / ${MAX_IMAGES}` : "";
}

async function addReferences(files) {
  showFieldError("reference_images", null);
  const good = await acceptable(files);
  const room = MAX_IMAGES - references.length;
  if (good.length > room) showFieldError("reference_images", t("form.error.too_many", {max: MAX_IMAGES}));
  for (const file of good.slice(0, room)) references.push({file, url: URL.createObjectURL(file)});
  formChanged();
  renderReferences();
}

$("#multi-previews")?.addEventListener("click", (event) => {
  const button = event.target.closest("[data-remove-index]");
  if (!button) return;
  const index = Number(button.dataset.removeIndex);
  URL.revokeObjectURL(references[index].url);
  references.splice(index, 1);
  formChanged();
  renderReferences();
  // Keep the keyboard user near where they were.
  ($("#multi-previews [data-remove-index]") ?? $("#file-references")).focus();
});

// WHITE_BACKGROUND and CLOTHING_CHANGE: one labelled slot per image.
function setSlot(name, file) {
  const slot = $(`[data-slot="${name}"]`);
  const preview = $(".slot-preview", slot);
  const img = $("img", preview);
  if (img.src) URL.revokeObjectURL(img.src);
  slots[name] = file;
  if (file) {
    img.src = URL.createObjectURL(file);
    img.alt = `${$(".slot-label", slot).textContent}: ${file.name}`;
  } else {
    img.removeAttribute("src");
    img.alt = "";
  }
  preview.hidden = !file;
  $(".dropzone-target", slot).hidden = Boolean(file);
  // A filled slot is reached through its remove button; its invisible file input leaves the tab order.
  $(".file-input", slot).tabIndex = file ? -1 : 0;
  slot.classList.toggle("is-filled", Boolean(file));
  formChanged();
}

async function fillSlots(startName, files) {
  showFieldError("reference_images", null);
  if (TYPE === "WHITE_BACKGROUND" && (files.length > 1 || picked.length)) {
    addPicked(files);
    return;
  }
  const good = await acceptable(files);
  if (!good.length) return;
  // Dropping two photos on one slot fills the other empty slot too (person and garment in one go).
  const order = [startName, ...Object.keys(slots).filter((name) => name !== startName && !slots[name])];
  order.forEach((name, index) => {
    if (good[index]) setSlot(name, good[index]);
  });
}

for (const slot of document.querySelectorAll("[data-slot]")) slots[slot.dataset.slot] = null;

form.addEventListener("click", (event) => {
  const button = event.target.closest("[data-remove-slot]");
  if (!button) return;
  const name = button.dataset.removeSlot;
  setSlot(name, null);
  $(`#file-${name}`).focus();
});

for (const zone of document.querySelectorAll("[data-dropzone]")) {
  const name = zone.dataset.dropzone;
  const input = $(".file-input", zone);
  const take = (files) => checking(name === "references" ? addReferences(files) : fillSlots(name, files));
  const many = input.multiple && name !== "references";
  input.addEventListener("change", () => {
    take([...input.files]);
    input.value = ""; // choosing the same file again after removing it must fire change again
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("is-dragging");
  });
  zone.addEventListener("dragleave", (event) => {
    if (!zone.contains(event.relatedTarget)) zone.classList.remove("is-dragging");
  });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("is-dragging");
    const files = droppedFiles(event.dataTransfer, many);
    checking(files.then(take));
  });
}

// A file dropped beside the drop zone must not make the browser leave the page to show it.
for (const kind of ["dragover", "drop"]) window.addEventListener(kind, (event) => event.preventDefault());

// ---------------------------------------------------------------------------------------------------------
// Many product photos at once (WHITE_BACKGROUND): each becomes its own task, all in one batch. One photo alone
// stays in the slot, exactly as before.

let picked = []; // the photos of the next batch, when there are two or more

/** Checks a batch's photos can be sent at all (format, size): a decode of each of 200 photos here would cost
 * seconds and gigabytes; the server judges the rest, and its verdict shows on the photo's row. */
function quickProblem(file) {
  if (!ACCEPTED.includes(file.type)) return t("form.error.format", {name: file.name});
  if (file.size > config.maxUploadBytes) {
    return t("form.error.file_too_large", {name: file.name, size: toMegabytes(file.size),
      max: toMegabytes(config.maxUploadBytes)});
  }
  return null;
}

function addPicked(files) {
  const problems = files.map(quickProblem);
  const messages = problems.filter(Boolean).slice(0, 3);
  if (problems.filter(Boolean).length > 3) messages.push("…");
  let all = [...(slots.product ? [slots.product] : []), ...picked, ...files.filter((file, i) => !problems[i])];
  if (all.length > MAX_BATCH) {
    messages.unshift(t("batch.too_many", {max: MAX_BATCH}));
    all = all.slice(0, MAX_BATCH);
  }
  if (messages.length) showFieldError("reference_images", messages.join(" "));
  setPicked(all);
}

function setPicked(files) {
  if (files.length === 1) {
    picked = [];
    setSlot("product", files[0]);
  } else {
    picked = files;
    if (slots.product) setSlot("product", null);
  }
  formChanged();
  renderPicked();
}

function renderPicked() {
  const panel = $("#batch-pick");
  if (!panel) return;
  panel.hidden = picked.length < 2;
  const bytes = picked.reduce((sum, file) => sum + file.size, 0);
  $("#batch-pick-count").textContent = picked.length
    ? t("batch.picked", {count: picked.length, size: toMegabytes(bytes)}) : "";
  $("#batch-pick-list").replaceChildren(...picked.map((file, index) => h("li", {class: "batch-pick-item"},
    h("span", {class: "batch-pick-name", text: file.name}),
    h("button", {type: "button", class: "icon-button remove-image", dataset: {removePick: index},
      "aria-label": t("form.remove", {name: file.name})}, icon("close", 14)))));
  updateSubmitLabel();
}

$("#batch-pick-list")?.addEventListener("click", (event) => {
  const button = event.target.closest("[data-remove-pick]");
  if (!button) return;
  const index = Number(button.dataset.removePick);
  setPicked(picked.filter((file, i) => i !== index));
  const buttons = [...document.querySelectorAll("[data-remove-pick]")];
  (buttons[Math.min(index, buttons.length - 1)] ?? $(".remove-image, #file-product"))?.focus();
});

$("#batch-pick-clear")?.addEventListener("click", () => {
  setPicked([]);
  $("#file-product").focus();
});

// A dropped folder (or several): its image files, found through its subfolders, in their names' order.
async function filesFromEntries(entries) {
  const files = [];
  let skipped = 0;
  const read = (reader) => new Promise((resolve, reject) => reader.readEntries(resolve, reject));
  const walk = async (entry) => {
    if (entry.name.startsWith(".")) return; // .DS_Store and the like: not the seller's photos
    if (entry.isDirectory) {
      const reader = entry.createReader();
      for (let some = await read(reader); some.length; some = await read(reader)) {
        for (const child of some) await walk(child);
      }
    } else if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      if (ACCEPTED.includes(file.type)) files.push(file);
      else skipped += 1;
    }
  };
  for (const entry of entries) await walk(entry);
  files.sort((a, b) => a.name.localeCompare(b.name, lang, {numeric: true}));
  return {files, skipped};
}

/** The files of a drop: plain files as they are; folders walked (only where the page takes many photos). */
async function droppedFiles(dataTransfer, many) {
  // Entries must be taken while the drop event runs: the browser empties the DataTransfer after it.
  const entries = many ? [...(dataTransfer?.items ?? [])].map((item) => item.webkitGetAsEntry?.()).filter(Boolean)
    : [];
  if (!entries.some((entry) => entry.isDirectory)) return [...(dataTransfer?.files ?? [])];
  const {files, skipped} = await filesFromEntries(entries);
  if (skipped) announce(t("batch.skipped", {count: skipped}));
  return files;
}

function variations() {
  return Number($("#variations")?.value ?? 1);
}

function updateSubmitLabel() {
  const count = TYPE === "CREATE" ? variations() : picked.length;
  $(".submit-label", submitButton).textContent = count > 1 ? t("form.submit_many", {count}) : t("form.submit");
}

$("#variations")?.addEventListener("change", () => {
  formChanged();
  updateSubmitLabel();
});

/** Queues the batch's photos (or the variations) for upload; the form is ready for the next at once. */
async function submitBatch(prompt) {
  const batch = newBatchId();
  const entries = TYPE === "CREATE"
    ? Array.from({length: variations()}, () => ({batch, type: TYPE, prompt, files: chosenFiles()}))
    : picked.map((file) => ({batch, type: TYPE, prompt, files: [file]}));
  await uploadsReady;
  book.started(batch);
  await queue.add(entries);
  announce(t("announce.batch_started", {count: entries.length}));
  resetForm();
  findBatch(batch)?.scrollIntoView({block: "nearest", behavior: reducedMotion.matches ? "auto" : "smooth"});
}

function chosenFiles() {
  if (TYPE === "CREATE") return references.map((ref) => ref.file);
  if (TYPE === "WHITE_BACKGROUND") return [slots.product].filter(Boolean);
  return [slots.person, slots.garment].filter(Boolean); // the person first, then the garment: the API's order
}

function validate() {
  const errors = [];
  const prompt = promptInput?.value.trim() ?? "";
  if (TYPE === "CREATE" && !prompt) errors.push(["prompt", t("form.error.prompt_required")]);
  if (prompt.length > MAX_PROMPT) errors.push(["prompt", t("form.error.prompt_too_long", {max: MAX_PROMPT})]);
  if (TYPE === "WHITE_BACKGROUND" && !slots.product && !picked.length) errors.push(["reference_images", t("form.error.need_product")]);
  if (TYPE === "CLOTHING_CHANGE" && !slots.person) errors.push(["reference_images", t("form.error.need_person")]);
  else if (TYPE === "CLOTHING_CHANGE" && !slots.garment) {
    errors.push(["reference_images", t("form.error.need_garment")]);
  }
  return errors;
}

function focusField(field) {
  if (field === "prompt") promptInput?.focus();
  else if (field === "reference_images") {
    const empty = [...form.querySelectorAll(".file-input")].find((input) => input.tabIndex >= 0
      && !input.closest("[hidden]"));
    (empty ?? form.querySelector(".remove-image"))?.focus();
  }
  else $("#form-error").focus?.();
}

function resetForm() {
  if (promptInput) promptInput.value = "";
  updateCounter();
  for (const ref of references) URL.revokeObjectURL(ref.url);
  references = [];
  renderReferences();
  for (const name of Object.keys(slots)) setSlot(name, null);
  picked = [];
  renderPicked();
  const select = $("#variations");
  if (select) select.value = "1";
  updateSubmitLabel();
  idempotencyKey = null;
}

let submitting = false;

// The new card is where the seller looks next; on a phone it starts below the form, out of sight.
function showNewCard(id) {
  findCard(progressList, id)?.scrollIntoView({block: "nearest", behavior: reducedMotion.matches ? "auto" : "smooth"});
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (submitting) return; // the Idempotency-Key covers what slips past this (a resend after a lost answer)
  submitting = true;
  await Promise.all(pendingChecks);
  submitting = false;
  clearErrors();
  const errors = validate();
  if (errors.length) {
    for (const [field, message] of errors) showFieldError(field, message);
    focusField(errors[0][0]);
    return;
  }
  const prompt = promptInput?.value.trim() ?? "";
  if (picked.length > 1 || variations() > 1) {
    await startBatch(prompt);
    return;
  }
  const body = new FormData();
  body.append("type", TYPE);
  if (prompt || TYPE === "CREATE") body.append("prompt", prompt);
  for (const file of chosenFiles()) body.append("reference_images", file, file.name);
  idempotencyKey ??= newIdempotencyKey();

  submitting = true;
  submitButton.disabled = true;
  $(".submit-label", submitButton).textContent = t("form.submitting");
  try {
    const task = await api("/api/tasks", {method: "POST", body, headers: {"Idempotency-Key": idempotencyKey}});
    monitor.watch(task);
    announce(t("announce.started"));
    resetForm();
    showNewCard(task.id);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    const field = ["prompt", "reference_images"].includes(error.field) ? error.field : "form";
    const message = error.status === 0 ? t("form.error.network") : error.detail ?? t("form.error.unknown");
    unreachableShown = error.status === 0;
    showFieldError(field, message);
    focusField(field);
  } finally {
    submitting = false;
    submitButton.disabled = false;
    updateSubmitLabel();
    // The disabled button dropped the focus to the page's top: the keyboard stays on the form, ready for the next.
    if (!form.contains(document.activeElement)) submitButton.focus({preventScroll: true});
  }
});

async function startBatch(prompt) {
  submitting = true;
  submitButton.disabled = true;
  $(".submit-label", submitButton).textContent = t("form.submitting");
  try {
    await submitBatch(prompt);
  } catch {
    // Storing the photos failed (the disk is full, the browser refused): nothing was sent, the form keeps them.
    showFieldError("form", t("form.error.unknown"));
    focusField("form");
  } finally {
    submitting = false;
    submitButton.disabled = false;
    updateSubmitLabel();
    if (!form.contains(document.activeElement)) submitButton.focus({preventScroll: true});
  }
}

// ---------------------------------------------------------------------------------------------------------
// "Use as …": a finished result arrives in this page's form from a link (see handoff.js). Its image is fetched
// with the owner's cookie and goes into the slot through the same functions as a chosen file, so it is
// previewed, checked and uploaded exactly like one.

const HANDOFF_LABELS = {product: "form.product", person: "form.person", garment: "form.garment",
  reference: "form.reference"};

async function takeHandoff() {
  const handoff = handoffFromHash(location.hash, TYPE);
  if (!handoff) return;
  // Taken once: a reload must not put the image back after the user removed it.
  history.replaceState(history.state, "", location.pathname + location.search + hashWithoutHandoff(location.hash));
  showFieldError("reference_images", null);
  let file;
  try {
    const task = await api(`/api/tasks/${encodeURIComponent(handoff.taskId)}`);
    if (!task.image_url) throw new Error("the task has no image");
    const response = await fetch(task.image_url, {credentials: "same-origin"});
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const blob = await response.blob();
    file = new File([blob], handoffFileName(task.id, blob.type), {type: blob.type});
  } catch {
    showFieldError("reference_images", t("use_as.gone"));
    focusField("reference_images");
    return;
  }
  if (handoff.as === "reference") await addReferences([file]);
  else await fillSlots(handoff.as, [file]);
  announce(t("use_as.added", {slot: t(HANDOFF_LABELS[handoff.as])}));
  // On to what the form still needs: the prompt, the other photo, or nothing but Generate.
  const missing = validate();
  if (missing.length) focusField(missing[0][0]);
  else submitButton.focus();
}

// ---------------------------------------------------------------------------------------------------------
// Start: the running "elapsed" texts, the history, the viewer, and the recovery of unfinished tasks.

setInterval(() => {
  tickElapsed(progressList, serverNow());
  // "Trying again in 12s": a paused upload counts down too.
  if (queue && queue.pausedUntil > clock.now()) for (const batch of queue.batches()) scheduleBatch(batch);
}, 1000);
// First: the cards made once it is in point into the page's copy of the sprite (cards.js); until then, or if it
// fails, into the sprite's file.
inlineIcons().catch(() => {});
updateCounter();
renderReferences();
updateSections();
loadHistory();
viewer.start();
takeHandoff();
addEventListener("hashchange", takeHandoff);
monitor.start().then(() => {
  // Lets tests (and anyone curious) know the unfinished tasks have been looked for at least once.
  document.documentElement.dataset.recovered = "true";
  const count = monitor.tasks.length;
  if (count) announce(t("announce.recovered", {count}));
});

followPageLifecycle(monitor);

// Exposed for people debugging in the console and for the browser tests.
window.genkeep = {monitor, viewer, book, uploads: () => queue};
