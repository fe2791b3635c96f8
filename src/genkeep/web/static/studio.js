// A generation type's page: the form, the tasks in progress (kept by the recovery client) and the history.
import {ApiError, api, newIdempotencyKey, taskListPath} from "./api.js";
import {createCard, h, icon, isCanceled, renderCard, tickElapsed} from "./cards.js";
import {handoffFileName, handoffFromHash, hashWithoutHandoff} from "./handoff.js";
import {announce, config, t, taskErrorText} from "./i18n.js";
import {followPageLifecycle} from "./page-lifecycle.js";
import {TaskMonitor} from "./recovery.js";
import {ResultViewer} from "./viewer.js";

const TYPE = config.type;
const HISTORY_PAGE = 12;
const ACCEPTED = config.acceptedTypes;
const [, MAX_IMAGES] = config.imageCounts[TYPE];
const MAX_PROMPT = config.maxPromptChars;
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
// The recovery client's callbacks.

function onTask(task) {
  const card = findCard(progressList, task.id);
  if (card) {
    renderCard(card, task, {now: serverNow()});
    return;
  }
  const fresh = createCard(task, {now: serverNow()});
  flip(() => insertByCreated(progressList, fresh, task));
  updateSections();
}

function onFinish(task) {
  if (task.status === "completed") announce(t("announce.completed", {prompt: task.prompt || t(`type.${task.type}`)}));
  else if (isCanceled(task)) announce(t("card.canceled_title"));
  else announce(t("announce.failed", {message: taskErrorText(task.error)}));
  const card = findCard(progressList, task.id);
  if (!card) {
    addToHistory(task, {top: true});
    return;
  }
  renderCard(card, task, {now: serverNow()});
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
// History: this type's finished tasks, newest first, paged with the cursor.

let historyCursor = null;
const loadMore = $("#load-more");

function addToHistory(task, {top = false} = {}) {
  if (findCard(historyList, task.id) || findCard(progressList, task.id)) return;
  const card = createCard(task, {now: serverNow()});
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
    take([...(event.dataTransfer?.files ?? [])]);
  });
}

// A file dropped beside the drop zone must not make the browser leave the page to show it.
for (const kind of ["dragover", "drop"]) window.addEventListener(kind, (event) => event.preventDefault());

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
  if (TYPE === "WHITE_BACKGROUND" && !slots.product) errors.push(["reference_images", t("form.error.need_product")]);
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
  const body = new FormData();
  body.append("type", TYPE);
  const prompt = promptInput?.value.trim() ?? "";
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
    $(".submit-label", submitButton).textContent = t("form.submit");
    // The disabled button dropped the focus to the page's top: the keyboard stays on the form, ready for the next.
    if (!form.contains(document.activeElement)) submitButton.focus({preventScroll: true});
  }
});

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

setInterval(() => tickElapsed(progressList, serverNow()), 1000);
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
window.genkeep = {monitor, viewer};
