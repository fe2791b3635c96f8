// One card per task, for the studio pages and the home page. A card keeps its element from "in progress" to
// "history": its media box has a fixed shape, so the spinner turning into the image moves nothing around it.
import {config, formatElapsed, formatTime, t, taskErrorText, typeLabel} from "./i18n.js";
import {hashWithTask} from "./viewer-state.js";

const ICONS = "/static/icons/icons.svg";
// A <use> pointing into the sprite's file makes Chromium revalidate the file (a 304: static files are no-cache) for
// each one made: 167 requests while a 100-photo batch ran (bench/catalog.py), more than the page's polls. Once the
// page has inlined the sprite (inlineIcons), the icons made here point into that one copy instead.
let iconHref = `${ICONS}#`;

/** Fetches the sprite once and keeps its symbols in the page (ids prefixed "icon-", not to meet the page's). */
export async function inlineIcons() {
  const response = await fetch(ICONS, {credentials: "same-origin"});
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const sprite = new DOMParser().parseFromString(await response.text(), "image/svg+xml").documentElement;
  if (sprite.localName !== "svg") throw new Error("the icon sprite could not be read");
  for (const symbol of sprite.querySelectorAll("symbol[id]")) symbol.id = `icon-${symbol.id}`;
  const kept = document.importNode(sprite, true);
  kept.setAttribute("aria-hidden", "true");
  kept.style.display = "none"; // symbols are drawn where they are used, not here
  document.body.append(kept);
  iconHref = "#icon-";
}

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    // Through the style object, never a style attribute: the Content-Security-Policy blocks inline styles.
    else if (name === "style") Object.assign(node.style, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.flat().filter((child) => child != null && child !== false));
  return node;
}

export function icon(name, size = 18) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("width", size);
  svg.setAttribute("height", size);
  const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
  use.setAttribute("href", `${iconHref}${name}`);
  svg.append(use);
  return svg;
}

export const isBusy = (task) => task.status === "pending" || task.status === "processing";

/** Where an unfinished task is: in line behind the owner's running limit (pending: its time has not started),
 * waiting for a free worker, running, or running again after an interruption. */
export function phase(task) {
  if (task.status === "pending") return "queued";
  if (task.attempts === 0) return "waiting";
  return task.attempts > 1 ? "restarted" : "running";
}

const PHASE_TEXT = {queued: "status.queued", waiting: "status.waiting", running: "status.processing",
  restarted: "status.restarted"};
const isWaiting = (name) => name === "queued" || name === "waiting";
const phaseText = (name) => t(PHASE_TEXT[name]);

// What a card that already showed its task running says next. A worker that stops gracefully hands the task back
// and is not charged the attempt (attempts goes back down), so the server's count alone would show "waiting",
// then "generating" from the start again, its progress lower than before: this page saw it run, and says it was
// interrupted. (The monitor never has two answers about a task out at once, so a lower progress is not a late
// answer overtaken by a newer one.)
function nextPhase(card, task) {
  const next = phase(task);
  if (card.dataset.ran !== "true" || next === "queued") return next;
  if (next === "waiting" || card.dataset.phase === "restarted") return "restarted";
  const shown = Number(card.querySelector(".progress")?.getAttribute("aria-valuenow") ?? -1);
  if (typeof task.progress === "number" && Math.round(task.progress * 100) < shown) return "restarted";
  return next;
}

export const isCanceled = (task) => task.status === "failed" && task.error?.code === "canceled";

/** A result made by a stand-in engine (config.standIns, from the server): it shows the studio works, not what
 * was asked for, and must never pass for an AI result, on the card, in the viewer or as a downloaded file. */
export function isStandIn(task) {
  return task.status === "completed" && Boolean(config.standIns?.[task.type]?.includes(task.engine));
}

export function standInMark() {
  return h("p", {class: "stand-in-mark"}, icon("alert", 14), h("span", {text: t("card.stand_in")}));
}

/** What the engine said about a result besides the picture (task.notes), each in the seller's words. */
export function resultNotes(task) {
  const notes = task.status === "completed" ? task.notes ?? [] : [];
  return notes.map((note) => h("p", {class: "result-note"}, icon("alert", 14), h("span", {text: t(`note.${note}`)})));
}

/** The file name a download gets: a stand-in's says so. */
export function downloadName(task) {
  if (!isStandIn(task)) return "";
  const extension = (task.image_url ?? "").split(".").pop() || "png";
  return `${t("card.stand_in_file")}-${task.id.slice(0, 8)}.${extension}`;
}

// Each card's latest task, for the viewer: it opens at once, without asking the server again.
const shownTasks = new WeakMap();

/** The task a card shows, or null. */
export function cardTask(card) {
  return shownTasks.get(card) ?? null;
}

/** What the reference image at `index` is to its task: the product, the person, the garment, reference n. */
export function referenceName(task, index) {
  if (task.type === "CLOTHING_CHANGE") return index === 0 ? t("form.person") : t("form.garment");
  if (task.type === "WHITE_BACKGROUND") return t("form.product");
  return t("card.reference", {n: index + 1});
}

export function resultAlt(task) {
  return task.prompt ? t("alt.result", {prompt: task.prompt}) : t("alt.result_untitled", {type: typeLabel(task.type)});
}

// How wide a card's picture is drawn (studio.css: two columns on a phone, ~260 px columns beside the form): the
// browser picks the smallest thumbnail that covers it on its screen (320 on 1x, 640 on 2x and 3x).
const CARD_PICTURE_SIZES = "(max-width: 760px) calc(50vw - 19px), 260px";
const CHIP_SIZES = "36px";

/**
 * An <img> of a picture through its thumbnails (the task's `thumbnails` / `image_thumbnails`): the browser fetches
 * only the one its screen needs, when it comes near the screen, and decodes it off the main thread. `width` and
 * `height` give the box its shape before anything arrives. Without thumbnails (an older server) it is the picture.
 */
export function thumbnailImage(url, thumbnails, {alt, sizes, width, height, lazy = true}) {
  const sources = thumbnails ?? [];
  return h("img", {
    src: sources[0]?.url ?? url,
    // The long side as the width: exact for landscape and square pictures, and close enough for portrait ones.
    srcset: sources.length ? sources.map((thumb) => `${thumb.url} ${thumb.max_side}w`).join(", ") : null,
    sizes: sources.length ? sizes : null,
    alt, width, height, loading: lazy ? "lazy" : null, decoding: "async",
  });
}

function thumbnails(task) {
  const images = task.reference_images ?? [];
  if (!images.length) return null;
  return h("ul", {class: "thumbs", "aria-label": t("card.references")},
    images.map((image, index) => {
      const name = referenceName(task, index);
      const chip = thumbnailImage(image.url, image.thumbnails, {alt: name, sizes: CHIP_SIZES, width: 40, height: 40});
      return h("li", {title: name}, chip);
    }));
}

function busyMedia(task) {
  const progress = typeof task.progress === "number" ? Math.round(task.progress * 100) : null;
  const busy = h("div", {class: "media-busy"},
    h("img", {class: "media-preview", alt: t("alt.preview"), decoding: "async", hidden: true}),
    h("span", {class: "spinner", role: "img", "aria-label": t("card.busy")}),
    h("span", {class: "media-status", "data-status-text": true, text: phaseText(phase(task))}),
    h("div", {
      class: "progress", role: "progressbar", "aria-label": phaseText(phase(task)),
      "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": progress ?? undefined, hidden: progress === null,
    }, h("span", {class: "progress-fill", style: {width: `${progress ?? 0}%`}})));
  showPreview(busy, task.preview_url);
  return busy;
}

/** The engine's latest preview behind the progress indicator; a new one replaces the old only once loaded. */
function showPreview(busy, url) {
  const img = busy.querySelector(".media-preview");
  if (!img || !url || img.dataset.wanted === url) return;
  img.dataset.wanted = url;
  const next = new Image();
  next.addEventListener("load", () => {
    if (img.dataset.wanted !== url) return;  // a newer preview overtook this one
    img.src = url;
    img.hidden = false;
    busy.classList.add("has-preview");
  }, {once: true});
  next.src = url;
}

function resultMedia(task) {
  // The card's box is square whatever the picture's shape (object-fit: contain), so square is its shape here too.
  const side = task.image_thumbnails?.at(-1)?.max_side ?? null;
  const img = thumbnailImage(task.image_url, task.image_thumbnails,
    {alt: resultAlt(task), sizes: CARD_PICTURE_SIZES, width: side, height: side});
  // Fade in once decoded: the box already has its final size, so only the picture changes.
  img.addEventListener("load", () => img.classList.add("is-loaded"), {once: true});
  if (img.complete) img.classList.add("is-loaded");
  // A link to the viewer's own address: Enter opens it, and so does a new tab.
  // A stand-in's mark sits on the picture itself, and is part of the link's name for a screen reader.
  return h("a", {class: "media-result media-open", href: hashWithTask("", task.id), title: t("card.open")}, img,
    isStandIn(task) ? standInMark() : null);
}

function errorMedia(task) {
  if (isCanceled(task)) {
    // The seller's own choice, not a failure: said calmly, without the alarm of a failed generation.
    return h("a", {class: "media-canceled media-open", href: hashWithTask("", task.id), title: t("card.details")},
      icon("close", 24), h("strong", {text: t("card.canceled_title")}));
  }
  return h("a", {class: "media-error media-open", href: hashWithTask("", task.id), title: t("card.details")},
    icon("alert", 28),
    h("strong", {text: t("card.failed_title")}),
    h("p", {class: "error-message", text: taskErrorText(task.error)}));
}

function media(task) {
  if (isBusy(task)) return busyMedia(task);
  if (task.status === "completed" && task.image_url) return resultMedia(task);
  return errorMedia(task);
}

function meta(task, now) {
  if (isBusy(task)) {
    const key = isWaiting(phase(task)) ? "card.waited" : "card.elapsed";
    return h("p", {class: "card-meta"}, icon("clock", 14),
      h("span", {"data-elapsed": task.created_at, "data-elapsed-key": key,
        text: t(key, {time: formatElapsed(now - Date.parse(task.created_at))})}));
  }
  const outcome = isCanceled(task) ? "canceled" : task.status;
  const pill = h("span", {class: `pill pill--${outcome}`, text: t(`status.${outcome}`)});
  // Which engine made it is in the viewer's facts; the card says only what matters to the seller: a stand-in's
  // result is marked as one (see standInMark).
  return h("p", {class: "card-meta"}, pill,
    h("time", {datetime: task.finished_at ?? task.updated_at, text: formatTime(task.finished_at ?? task.updated_at)}));
}

function actions(task, {withType = false} = {}) {
  // Delete comes last, after the main action, and is pushed to the far end: the keyboard reaches Download first
  // and a quick tap on Download never lands on it.
  const remove = withType ? null
    : h("button", {type: "button", class: "icon-button icon-button--danger card-delete", dataset: {action: "delete"},
      "aria-label": t("card.delete"), title: t("card.delete")}, icon("trash", 17));
  if (isBusy(task)) {
    return h("div", {class: "card-actions"},
      h("button", {type: "button", class: "button button--secondary button--small", dataset: {action: "cancel"}},
        t("card.cancel")));
  }
  if (task.status === "completed" && task.image_url) {
    return h("div", {class: "card-actions"},
      h("a", {class: "button button--primary button--small", href: task.image_url, download: downloadName(task)},
        icon("download", 16), h("span", {text: t("card.download")})),
      h("button", {type: "button", class: "icon-button", dataset: {action: "use-as"}, "aria-expanded": "false",
        "aria-controls": "use-as-menu", "aria-label": t("card.use_as"), title: t("card.use_as")},
      icon("next-step", 17)),
      remove);
  }
  return h("div", {class: "card-actions"},
    h("button", {type: "button", class: "button button--primary button--small", dataset: {action: "retry"}},
      icon("retry", 16), h("span", {text: t("card.retry")})),
    remove);
}

function metaRow(task, now) {
  return h("div", {class: "card-meta-row"}, meta(task, now));
}

/** What names a card: its prompt; in a batch without one, the photo's own file name (forty "No prompt" cards
 * could not be told apart). */
export function cardTitle(task) {
  return task.prompt || (task.batch ? task.reference_images?.[0]?.filename : null) || null;
}

/** A new card element for a task. `withType` (home page) labels the type and links to its page instead. */
export function createCard(task, {now = Date.now(), withType = false, typePath = null} = {}) {
  const titleId = `card-${task.id}-prompt`;
  const title = cardTitle(task);
  const card = h("li", {class: "card", dataset: {id: task.id}, "aria-labelledby": titleId});
  card.append(
    h("div", {class: "card-media"}),
    h("div", {class: "card-body"},
      withType ? h("a", {class: "card-type", href: typePath, text: typeLabel(task.type)}) : null,
      h("p", {class: `card-prompt${title ? "" : " is-empty"}`, id: titleId, title: title ?? "",
        text: title || t("card.no_prompt")}),
      thumbnails(task),
      h("div", {class: "card-foot"})),
  );
  renderCard(card, task, {now, withType});
  return card;
}

/** Brings a card up to date: the media and actions change with the status; progress changes in place. */
export function renderCard(card, task, {now = Date.now(), withType = false} = {}) {
  const status = task.status;
  const busy = isBusy(task);
  shownTasks.set(card, task);
  card.setAttribute("aria-busy", busy ? "true" : "false");
  card.dataset.type = task.type;
  if (card.dataset.status === status) {
    const busyPhase = busy ? nextPhase(card, task) : null;
    const restarted = busyPhase !== null && card.dataset.phase !== busyPhase;
    if (busyPhase !== null && !isWaiting(busyPhase)) card.dataset.ran = "true";
    if (restarted) {
      // Waiting became running, or a worker took it over after an interruption: the words say so, and only
      // then may the bar start again from where the new attempt is.
      card.dataset.phase = busyPhase;
      card.querySelector("[data-status-text]").textContent = phaseText(busyPhase);
      card.querySelector(".progress")?.setAttribute("aria-label", phaseText(busyPhase));
      const elapsed = card.querySelector("[data-elapsed]");
      if (elapsed) elapsed.dataset.elapsedKey = isWaiting(busyPhase) ? "card.waited" : "card.elapsed";
    }
    const bar = card.querySelector(".progress");
    if (bar && typeof task.progress === "number") {
      // Never backwards without a word: a lower progress has made the phase "restarted" above.
      const percent = Math.round(task.progress * 100);
      bar.hidden = false;
      bar.setAttribute("aria-valuenow", percent);
      bar.querySelector(".progress-fill").style.width = `${percent}%`;
    }
    const busyBox = card.querySelector(".media-busy");
    if (busyBox) showPreview(busyBox, task.preview_url);
    return;
  }
  const hadFocus = card.contains(document.activeElement);
  card.dataset.status = status;
  card.dataset.phase = busy ? phase(task) : "";
  if (busy && !isWaiting(phase(task))) card.dataset.ran = "true";
  card.dataset.outcome = isCanceled(task) ? "canceled" : isStandIn(task) ? "stand-in" : status;
  card.querySelector(".card-media").replaceChildren(media(task));
  card.querySelector(".card-foot").replaceChildren(metaRow(task, now), ...resultNotes(task), actions(task, {withType}));
  // The button the user was on may be gone (cancel becomes download); keep them in the card.
  if (hadFocus) card.querySelector(".card-actions a, .card-actions button, .media-open")?.focus();
}

/** Refreshes the "running for …" text of every busy card from one clock. */
export function tickElapsed(root, now) {
  for (const node of root.querySelectorAll("[data-elapsed]")) {
    const key = node.dataset.elapsedKey ?? "card.elapsed";
    node.textContent = t(key, {time: formatElapsed(now - Date.parse(node.dataset.elapsed))});
  }
}
