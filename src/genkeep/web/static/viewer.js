// The result viewer: a finished card opened full size in a modal dialog, with zoom and pan, a before/after
// divider for results made from a photo, the page's other results one key away, and "Use as …" links into the
// next generation. Its state (address, position, zoom, divider) lives in viewer-state.js, which has no DOM.
import {api} from "./api.js";
import {
  cardTask, downloadName, h, icon, isBusy, isCanceled, isStandIn, referenceName, resultAlt, resultNotes, standInMark,
  thumbnailImage,
} from "./cards.js";
import {TARGETS, handoffHref} from "./handoff.js";
import {formatElapsed, formatTime, t, taskErrorText, typeLabel} from "./i18n.js";
import {ViewerRoute, ZoomPan, dividerAfterKey, neighbours} from "./viewer-state.js";

// Results made from a photo, where "before" means something.
const COMPARED_TYPES = new Set(["WHITE_BACKGROUND", "CLOTHING_CHANGE"]);
const ZOOM_STEP = 1.25;
const PAN_STEP = 80; // px per Shift+arrow
const SWIPE_MIN = 60; // px a finger must travel sideways to change picture
const DOUBLE_TAP_MS = 320;
const FOCUSABLE = "a[href], button, [tabindex]:not([tabindex='-1'])";

const browserHistory = {
  hash: () => location.hash,
  push: (hash) => history.pushState(history.state, "", hash || location.pathname + location.search),
  replace: (hash) => history.replaceState(history.state, "", hash || location.pathname + location.search),
  back: () => history.back(),
};

const isVisible = (node) => !node.closest("[hidden]") && node.getClientRects().length > 0;

/** Links into the next generation for a finished result: one per slot that can take its image. */
export function useAsLinks(task, typePaths) {
  return h("ul", {class: "use-as-list"}, TARGETS.map((target) => h("li", {},
    h("a", {class: "use-as-link", href: handoffHref(typePaths, task.id, target), dataset: {useAs: target.as}},
      icon(`type-${typePaths[target.type].replace(/^\//, "")}`, 18),
      h("span", {class: "use-as-text"},
        h("span", {class: "use-as-label", text: t(`use_as.${target.as}`)}),
        h("span", {class: "use-as-page", text: typeLabel(target.type)})),
      icon("arrow-right", 16)))));
}

export class ResultViewer {
  #items;
  #hasMore;
  #loadMore;
  #retry;
  #typePaths;
  #route = new ViewerRoute({history: browserHistory});
  #zoom = new ZoomPan();
  #ui;
  #menu;
  #menuOpener = null;
  #pressedOpener = null; // the open menu's button, pressed: that press closes the menu, its click must not reopen it

  #task = null; // the task shown
  #opener = null; // what opened the viewer, to give focus back to
  #token = 0; // the latest show(); a slower earlier fetch must not replace it
  #compare = false; // kept from one picture to the next, like the divider
  #divider = 50;
  #beforeIndex = 0;
  #pointers = new Map();
  #dragDivider = null;
  #gesture = null;
  #lastTap = null;
  #lastPointerType = "mouse";

  /**
   * @param {object} options
   * @param {() => Element[]} options.items the page's finished cards, in the order they are shown
   * @param {() => boolean} [options.hasMore] whether the page has more history to load
   * @param {() => Promise<void>} [options.loadMore] loads the next page of history
   * @param {(id: string) => Promise<boolean>} [options.retry] starts a failed task again; resolves true if it did
   * @param {Record<string, string>} options.typePaths each type's page
   */
  constructor({items, hasMore = () => false, loadMore = async () => {}, retry = null, typePaths}) {
    this.#items = items;
    this.#hasMore = hasMore;
    this.#loadMore = loadMore;
    this.#retry = retry;
    this.#typePaths = typePaths;
  }

  get isOpen() {
    return Boolean(this.#ui?.dialog.open);
  }

  /** Builds the dialog, follows clicks on cards and the address, and opens what the address names. */
  start() {
    this.#ui = this.#build();
    this.#menu = this.#buildMenu();
    document.body.append(this.#ui.dialog, this.#menu);
    document.addEventListener("click", (event) => this.#onDocumentClick(event));
    // Before the popover's light dismiss, which also happens on pointerdown.
    document.addEventListener("pointerdown", (event) => {
      this.#pressedOpener = this.#menuOpener?.contains(event.target) ? this.#menuOpener : null;
    }, {capture: true});
    addEventListener("hashchange", () => this.#onAddressChange());
    addEventListener("popstate", () => this.#onAddressChange());
    new ResizeObserver(() => this.#measure()).observe(this.#ui.canvas);
    const id = this.#route.taskId;
    if (id) this.show(id);
  }

  /** Opens the viewer on a task (or moves it there). `opener` gets focus back when it closes. */
  async show(id, {opener = null} = {}) {
    const token = ++this.#token;
    if (opener) this.#opener = opener;
    let task = this.#cardTask(id);
    if (!task) {
      task = await api(`/api/tasks/${encodeURIComponent(id)}`).catch(() => null);
      if (token !== this.#token) return;
    }
    if (!task || isBusy(task)) {
      // Unknown, deleted, someone else's or not finished yet: nothing opens, and the address stops naming it.
      if (this.#route.taskId === id) this.#route.close();
      return;
    }
    this.#route.open(task.id);
    this.#render(task);
    if (!this.isOpen) {
      this.#ui.dialog.showModal();
      this.#ui.close.focus();
    }
    this.#measure();
  }

  close() {
    if (!this.isOpen) return;
    this.#closeDialog();
    this.#route.close();
  }

  /** The page's list of cards changed (history loaded, a card arrived or left): the position follows. */
  listChanged() {
    if (this.isOpen) this.#renderPosition();
  }

  // -------------------------------------------------------------------------------------------------------
  // Where the tasks come from, and moving between them.

  #cardFor(id) {
    return this.#items().find((card) => card.dataset.id === id) ?? null;
  }

  #cardTask(id) {
    const card = this.#cardFor(id);
    return card ? cardTask(card) : null;
  }

  #position() {
    const ids = this.#items().map((card) => card.dataset.id);
    return neighbours(ids, this.#task?.id);
  }

  async #go(step) {
    let place = this.#position();
    let target = step < 0 ? place.previous : place.next;
    if (!target && step > 0 && place.index >= 0 && this.#hasMore()) {
      await this.#loadMore();
      place = this.#position();
      target = place.next;
    }
    if (target) await this.show(target);
  }

  async #goTo(where) {
    const ids = this.#items().map((card) => card.dataset.id);
    const target = where === "first" ? ids[0] : ids.at(-1);
    if (target && target !== this.#task?.id) await this.show(target);
  }

  #onAddressChange() {
    const id = this.#route.changed();
    if (!id) {
      if (this.isOpen) this.#closeDialog();
    } else if (id !== this.#task?.id || !this.isOpen) {
      this.show(id);
    }
  }

  #closeDialog() {
    this.#token++;
    this.#ui.dialog.close();
    this.#pointers.clear();
    // Focus goes back to the card of the picture last seen (the user may have moved since opening).
    const card = this.#task ? this.#cardFor(this.#task.id) : null;
    const target = card?.querySelector(".media-open") ?? (this.#opener?.isConnected ? this.#opener : null);
    if (target) {
      target.focus({preventScroll: true});
      target.scrollIntoView({block: "nearest"});
    }
    this.#opener = null;
  }

  #onDocumentClick(event) {
    if (event.defaultPrevented) return;
    const useAs = event.target.closest(".card [data-action=use-as]");
    if (useAs) this.#openMenu(useAs);
    const link = event.target.closest(".card .media-open");
    // With a modifier the browser opens the link's own address in a new tab or window, viewer included.
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    this.show(link.closest(".card").dataset.id, {opener: link});
  }

  // -------------------------------------------------------------------------------------------------------
  // The dialog.

  #build() {
    const button = (name, label, iconName, extra = {}) => h("button", {
      type: "button", class: `viewer-button viewer-button--${name}`, "aria-label": label, title: label, ...extra,
    }, icon(iconName, 20));

    const ui = {};
    ui.after = h("img", {class: "viewer-after", alt: "", draggable: "false"});
    ui.beforeImage = h("img", {alt: "", draggable: "false"});
    ui.before = h("div", {class: "viewer-before", hidden: true}, ui.beforeImage);
    ui.picture = h("div", {class: "viewer-picture"}, ui.after, ui.before);
    ui.knob = h("div", {
      class: "viewer-knob", role: "slider", tabindex: 0, "aria-label": t("viewer.divider"),
      "aria-valuemin": 0, "aria-valuemax": 100, "aria-orientation": "horizontal",
    }, icon("compare-handle", 20));
    ui.divider = h("div", {class: "viewer-divider", hidden: true}, ui.knob);
    ui.tags = h("div", {class: "viewer-tags", hidden: true, "aria-hidden": "true"},
      h("span", {class: "viewer-tag", text: t("viewer.before")}),
      h("span", {class: "viewer-tag", text: t("viewer.after")}));
    ui.loading = h("div", {class: "viewer-loading", hidden: true},
      h("span", {class: "spinner", role: "img", "aria-label": t("viewer.loading")}));
    ui.failure = h("div", {class: "viewer-failure", hidden: true});
    ui.canvas = h("div", {class: "viewer-canvas"}, ui.picture, ui.divider, ui.tags, ui.loading, ui.failure);

    ui.previous = button("previous", t("viewer.previous"), "chevron-left", {dataset: {go: "-1"}});
    ui.next = button("next", t("viewer.next"), "chevron-right", {dataset: {go: "1"}});
    ui.close = button("close", t("viewer.close"), "close");
    ui.count = h("span", {class: "viewer-count"});
    ui.zoomOut = button("zoom-out", t("viewer.zoom_out"), "minus");
    ui.zoomIn = button("zoom-in", t("viewer.zoom_in"), "plus");
    ui.zoomLevel = h("button", {type: "button", class: "viewer-zoom-level"});
    ui.compare = h("button", {type: "button", class: "viewer-compare", "aria-pressed": "false"},
      icon("compare", 18), h("span", {text: t("viewer.compare")}));
    ui.beforeChoice = h("div", {class: "viewer-choice", role: "group", "aria-label": t("viewer.compare_with"),
      hidden: true});
    ui.zoomTools = h("div", {class: "viewer-tool-group"}, ui.zoomOut, ui.zoomLevel, ui.zoomIn);
    ui.toolbar = h("div", {class: "viewer-toolbar"}, ui.zoomTools, ui.compare, ui.beforeChoice);

    ui.stage = h("div", {class: "viewer-stage"},
      h("div", {class: "viewer-topbar"}, ui.count, ui.close),
      ui.canvas, ui.previous, ui.next, ui.toolbar);

    ui.status = h("span", {class: "pill"});
    ui.title = h("h2", {id: "viewer-title", class: "viewer-title"});
    ui.prompt = h("p", {id: "viewer-prompt", class: "viewer-prompt"});
    ui.facts = h("dl", {class: "viewer-facts"});
    ui.references = h("section", {class: "viewer-section", "aria-labelledby": "viewer-references-title"},
      h("h3", {id: "viewer-references-title", text: t("card.references")}),
      h("ul", {class: "viewer-references"}));
    ui.actions = h("div", {class: "viewer-actions"});
    ui.useAs = h("section", {class: "viewer-section", "aria-labelledby": "viewer-use-as-title"},
      h("h3", {id: "viewer-use-as-title", text: t("use_as.title")}), h("div", {class: "viewer-use-as"}));
    ui.live = h("p", {class: "visually-hidden", "aria-live": "polite"});
    ui.info = h("aside", {class: "viewer-info"},
      h("div", {class: "viewer-heading"}, ui.title, ui.status),
      ui.prompt, ui.actions, ui.facts, ui.references, ui.useAs,
      h("p", {class: "viewer-keys", text: t("viewer.keys")}), ui.live);

    ui.dialog = h("dialog", {class: "viewer", "aria-labelledby": "viewer-title",
      "aria-describedby": "viewer-prompt"}, h("div", {class: "viewer-shell"}, ui.stage, ui.info));

    ui.dialog.addEventListener("cancel", (event) => {
      event.preventDefault(); // Esc: close through our own path, so the address and focus follow
      this.close();
    });
    ui.dialog.addEventListener("keydown", (event) => this.#onKey(event));
    ui.close.addEventListener("click", () => this.close());
    for (const nav of [ui.previous, ui.next]) {
      nav.addEventListener("click", () => {
        if (nav.getAttribute("aria-disabled") !== "true") this.#go(Number(nav.dataset.go));
      });
    }
    ui.zoomIn.addEventListener("click", () => this.#zoomed(() => this.#zoom.zoomBy(ZOOM_STEP)));
    ui.zoomOut.addEventListener("click", () => this.#zoomed(() => this.#zoom.zoomBy(1 / ZOOM_STEP)));
    ui.zoomLevel.addEventListener("click", () => this.#zoomed(() => this.#zoom.toggleActual()));
    ui.compare.addEventListener("click", () => this.#setCompare(!this.#compare));
    ui.beforeChoice.addEventListener("click", (event) => {
      const choice = event.target.closest("[data-before]");
      if (choice) this.#setBefore(Number(choice.dataset.before));
    });
    ui.knob.addEventListener("keydown", (event) => {
      const value = dividerAfterKey(this.#divider, event.key, {step: event.shiftKey ? 1 : 5});
      if (value === null) return;
      event.preventDefault();
      event.stopPropagation(); // the divider's arrows must not also change the picture
      this.#setDivider(value);
    });
    ui.actions.addEventListener("click", (event) => {
      if (event.target.closest("[data-viewer-retry]")) this.#retryShown(event.target.closest("button"));
    });
    this.#listenToPointers(ui);
    return ui;
  }

  #render(task) {
    const ui = this.#ui;
    const changed = this.#task?.id !== task.id;
    this.#task = task;
    const completed = task.status === "completed" && Boolean(task.image_url);

    ui.title.textContent = typeLabel(task.type);
    const outcome = isCanceled(task) ? "canceled" : task.status;
    ui.status.className = `pill pill--${outcome}`;
    ui.status.textContent = t(`status.${outcome}`);
    ui.prompt.textContent = task.prompt || t("card.no_prompt");
    ui.prompt.classList.toggle("is-empty", !task.prompt);
    this.#renderFacts(task, null);
    this.#renderReferences(task);
    this.#renderActions(task, completed);
    this.#renderPosition();

    ui.picture.hidden = !completed;
    ui.toolbar.hidden = !completed;
    ui.failure.hidden = completed;
    if (completed) {
      if (changed || ui.after.getAttribute("src") !== task.image_url) this.#loadPicture(task);
    } else {
      ui.loading.hidden = true;
      ui.after.removeAttribute("src");
      this.#renderFailure(task);
    }
    this.#renderCompare();
    this.#preloadNeighbours();
  }

  #renderPosition() {
    const ui = this.#ui;
    const place = this.#position();
    const inList = place.index >= 0;
    ui.count.textContent = inList ? t("viewer.position", {n: place.index + 1, count: place.count}) : "";
    const more = inList && !place.next && this.#hasMore();
    this.#setEnabled(ui.previous, Boolean(place.previous));
    this.#setEnabled(ui.next, Boolean(place.next) || more);
    ui.live.textContent = [ui.count.textContent, typeLabel(this.#task.type), ui.status.textContent,
      this.#task.prompt ?? ""].filter(Boolean).join(" · ");
  }

  #setEnabled(button, enabled) {
    // aria-disabled rather than disabled: a disabled button would drop the keyboard focus resting on it.
    button.setAttribute("aria-disabled", enabled ? "false" : "true");
  }

  #renderFacts(task, size) {
    const rows = [];
    if (task.engine) rows.push([t("viewer.engine"), task.engine]);
    if (size) rows.push([t("viewer.size"), t("viewer.size_value", {width: size.width, height: size.height})]);
    rows.push([t(task.status === "completed" ? "viewer.made" : "viewer.ended"),
      formatTime(task.finished_at ?? task.updated_at)]);
    const took = Date.parse(task.finished_at ?? "") - Date.parse(task.created_at ?? "");
    if (Number.isFinite(took)) rows.push([t("viewer.took"), formatElapsed(took)]);
    this.#ui.facts.replaceChildren(...rows.map(([name, value]) => h("div", {class: "viewer-fact"},
      h("dt", {text: name}), h("dd", {text: value}))));
  }

  #renderReferences(task) {
    const images = task.reference_images ?? [];
    this.#ui.references.hidden = images.length === 0;
    this.#ui.references.querySelector("ul").replaceChildren(...images.map((image, index) => {
      const name = referenceName(task, index);
      return h("li", {},
        h("figure", {},
          // The thumbnail in the panel; the link opens the original.
          h("a", {href: image.url, target: "_blank", rel: "noopener", title: name},
            thumbnailImage(image.url, image.thumbnails, {alt: name, sizes: "88px", width: 88, height: 88})),
          h("figcaption", {text: name})));
    }));
  }

  #renderActions(task, completed) {
    const ui = this.#ui;
    ui.useAs.hidden = !completed;
    if (completed) {
      ui.actions.replaceChildren(...[
        isStandIn(task) ? standInMark() : null,
        ...resultNotes(task),
        h("a", {class: "button button--primary", href: task.image_url, download: downloadName(task)},
          icon("download", 18), h("span", {text: t("card.download")}))].filter(Boolean));
      ui.useAs.querySelector(".viewer-use-as").replaceChildren(useAsLinks(task, this.#typePaths));
    } else {
      ui.actions.replaceChildren(this.#retry
        ? h("button", {type: "button", class: "button button--primary", dataset: {viewerRetry: ""}},
          icon("retry", 18), h("span", {text: t("card.retry")}))
        : "");
    }
  }

  #renderFailure(task) {
    const images = task.reference_images ?? [];
    const canceled = isCanceled(task);
    // replaceChildren would write a null out as the word "null": only the parts there are.
    this.#ui.failure.replaceChildren(...[
      h("div", {class: `viewer-failure-message${canceled ? " is-canceled" : ""}`},
        icon(canceled ? "close" : "alert", 30),
        h("strong", {text: t(canceled ? "card.canceled_title" : "card.failed_title")}),
        canceled ? null : h("p", {class: "error-message", text: taskErrorText(task.error)})),
      images.length ? h("ul", {class: "viewer-failure-images"}, images.map((image, index) => h("li", {},
        h("figure", {},
          thumbnailImage(image.url, image.thumbnails,
            {alt: referenceName(task, index), sizes: "(max-width: 760px) 120px, 160px", lazy: false}),
          h("figcaption", {text: referenceName(task, index)}))))) : null].filter(Boolean));
  }

  async #retryShown(button) {
    button.disabled = true;
    const started = await this.#retry(this.#task.id).catch(() => false);
    button.disabled = false;
    if (started) this.close();
  }

  #preloadNeighbours() {
    const place = this.#position();
    for (const id of [place.previous, place.next]) {
      const url = id ? this.#cardTask(id)?.image_url : null;
      if (url) new Image().src = url;
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // The picture: loading, zoom and pan.

  #loadPicture(task) {
    const ui = this.#ui;
    const img = ui.after;
    ui.loading.hidden = false;
    img.classList.remove("is-loaded");
    img.alt = resultAlt(task);
    let loaded = false; // a cached picture is complete at once, and its load event still follows
    const done = () => {
      if (loaded || this.#task?.id !== task.id || !img.naturalWidth) return;
      loaded = true;
      ui.loading.hidden = true;
      img.classList.add("is-loaded");
      ui.picture.style.width = `${img.naturalWidth}px`;
      ui.picture.style.height = `${img.naturalHeight}px`;
      this.#zoom.load(img.naturalWidth, img.naturalHeight);
      this.#renderFacts(task, {width: img.naturalWidth, height: img.naturalHeight});
      this.#draw();
    };
    img.onload = done;
    img.onerror = () => {
      if (this.#task?.id === task.id) ui.loading.hidden = true;
    };
    img.src = task.image_url;
    if (img.complete) done();
  }

  #measure() {
    if (!this.isOpen) return;
    const {width, height} = this.#ui.canvas.getBoundingClientRect();
    this.#zoom.resize(width, height);
    this.#draw();
  }

  #zoomed(change) {
    change();
    this.#draw();
  }

  #draw() {
    const ui = this.#ui;
    const zoom = this.#zoom;
    ui.picture.style.transform = `translate(${zoom.x}px, ${zoom.y}px) scale(${zoom.scale})`;
    ui.zoomLevel.textContent = `${zoom.percent}%`;
    const label = zoom.fitted ? t("viewer.zoom_actual") : t("viewer.zoom_fit");
    ui.zoomLevel.setAttribute("aria-label", `${t("viewer.zoom_level", {percent: zoom.percent})}. ${label}`);
    ui.zoomLevel.title = label;
    this.#setEnabled(ui.zoomIn, zoom.canZoomIn);
    this.#setEnabled(ui.zoomOut, zoom.canZoomOut);
    ui.canvas.classList.toggle("is-pannable", zoom.pannable);
    this.#drawDivider();
  }

  // -------------------------------------------------------------------------------------------------------
  // Before and after.

  #comparable() {
    const task = this.#task;
    return Boolean(task && task.status === "completed" && COMPARED_TYPES.has(task.type)
      && task.reference_images?.length);
  }

  #renderCompare() {
    const ui = this.#ui;
    const task = this.#task;
    const comparable = this.#comparable();
    ui.compare.hidden = !comparable;
    const on = comparable && this.#compare;
    ui.compare.setAttribute("aria-pressed", on ? "true" : "false");
    ui.before.hidden = !on;
    ui.divider.hidden = !on;
    ui.tags.hidden = !on;
    ui.dialog.dataset.compare = on ? "on" : "off";
    const images = comparable ? task.reference_images : [];
    if (this.#beforeIndex >= images.length) this.#beforeIndex = 0;
    ui.beforeChoice.hidden = !on || images.length < 2;
    ui.beforeChoice.replaceChildren(...images.map((image, index) => h("button", {
      type: "button", class: "viewer-choice-button", dataset: {before: index},
      "aria-pressed": index === this.#beforeIndex ? "true" : "false", text: referenceName(task, index),
    })));
    if (on) {
      const image = images[this.#beforeIndex];
      if (ui.beforeImage.getAttribute("src") !== image.url) ui.beforeImage.src = image.url;
      ui.beforeImage.alt = `${t("viewer.before")}: ${referenceName(task, this.#beforeIndex)}`;
    }
    this.#setDivider(this.#divider);
  }

  #setCompare(on) {
    if (!this.#comparable()) return;
    this.#compare = on;
    this.#renderCompare();
    if (on) this.#ui.knob.focus({preventScroll: true});
  }

  #setBefore(index) {
    this.#beforeIndex = index;
    this.#renderCompare();
  }

  #setDivider(value) {
    this.#divider = Math.min(100, Math.max(0, Math.round(value)));
    const knob = this.#ui.knob;
    knob.setAttribute("aria-valuenow", String(this.#divider));
    knob.setAttribute("aria-valuetext", t("viewer.divider_value", {before: this.#divider,
      after: 100 - this.#divider}));
    this.#drawDivider();
  }

  #drawDivider() {
    const ui = this.#ui;
    if (ui.divider.hidden) return;
    const zoom = this.#zoom;
    // The before picture shows left of the divider; the divider sits on the picture, kept in view when zoomed.
    ui.before.style.clipPath = `inset(0 ${100 - this.#divider}% 0 0)`;
    const {width, height} = ui.canvas.getBoundingClientRect();
    const box = zoom.box;
    const x = Math.min(width, Math.max(0, box.left + box.width * this.#divider / 100));
    const top = Math.max(0, box.top);
    const bottom = Math.min(height, box.top + box.height);
    ui.divider.style.transform = `translateX(${x}px)`;
    ui.divider.style.top = `${top}px`;
    ui.divider.style.height = `${Math.max(0, bottom - top)}px`;
    // "Before" and "After" sit in the picture's visible corners.
    const left = Math.max(0, box.left);
    ui.tags.style.left = `${left}px`;
    ui.tags.style.top = `${top}px`;
    ui.tags.style.width = `${Math.max(0, Math.min(width, box.left + box.width) - left)}px`;
  }

  // -------------------------------------------------------------------------------------------------------
  // Keys, pointers, wheel.

  #onKey(event) {
    if (event.key === "Tab") {
      this.#trapFocus(event);
      return;
    }
    // The divider handles (and stops) its own arrow, Home, End and Page keys; every other key works there too.
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const pan = (dx, dy) => this.#zoomed(() => this.#zoom.panBy(dx, dy));
    const actions = {
      ArrowLeft: () => (event.shiftKey ? pan(PAN_STEP, 0) : this.#go(-1)),
      ArrowRight: () => (event.shiftKey ? pan(-PAN_STEP, 0) : this.#go(1)),
      // Up and down without Shift are left to scroll the details.
      ...(event.shiftKey ? {ArrowUp: () => pan(0, PAN_STEP), ArrowDown: () => pan(0, -PAN_STEP)} : {}),
      Home: () => this.#goTo("first"),
      End: () => this.#goTo("last"),
      "+": () => this.#zoomed(() => this.#zoom.zoomBy(ZOOM_STEP)),
      "=": () => this.#zoomed(() => this.#zoom.zoomBy(ZOOM_STEP)),
      "-": () => this.#zoomed(() => this.#zoom.zoomBy(1 / ZOOM_STEP)),
      "0": () => this.#zoomed(() => this.#zoom.fit()),
      "1": () => this.#zoomed(() => this.#zoom.zoomTo(1)),
      c: () => this.#setCompare(!this.#compare),
      C: () => this.#setCompare(!this.#compare),
    };
    const action = actions[event.key];
    if (!action) return;
    event.preventDefault();
    action();
  }

  #trapFocus(event) {
    // showModal() already makes the page behind inert; this keeps Tab from leaving for the browser's toolbar.
    const focusable = [...this.#ui.dialog.querySelectorAll(FOCUSABLE)].filter(isVisible);
    if (!focusable.length) return;
    const first = focusable[0];
    const last = focusable.at(-1);
    const active = document.activeElement;
    if (event.shiftKey && (active === first || !this.#ui.dialog.contains(active))) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (active === last || !this.#ui.dialog.contains(active))) {
      event.preventDefault();
      first.focus();
    }
  }

  #listenToPointers(ui) {
    const canvas = ui.canvas;
    const local = (event) => {
      const rect = canvas.getBoundingClientRect();
      return {x: event.clientX - rect.left, y: event.clientY - rect.top};
    };

    canvas.addEventListener("wheel", (event) => {
      if (ui.picture.hidden) return;
      event.preventDefault();
      // Trackpad pinches arrive as wheel events with ctrlKey, in smaller steps.
      const speed = event.ctrlKey ? 0.01 : 0.0015;
      const delta = event.deltaMode === 1 ? event.deltaY * 16 : event.deltaY;
      this.#zoomed(() => this.#zoom.zoomBy(Math.exp(-delta * speed), local(event)));
    }, {passive: false});

    canvas.addEventListener("dblclick", (event) => {
      // A finger's double tap is handled with the other touch gestures (some browsers also send dblclick).
      if (ui.picture.hidden || event.target.closest(".viewer-divider") || this.#lastPointerType === "touch") return;
      this.#zoomed(() => this.#zoom.toggleActual(local(event)));
    });

    canvas.addEventListener("pointerdown", (event) => {
      if (ui.picture.hidden || event.button !== 0) return;
      this.#lastPointerType = event.pointerType;
      canvas.setPointerCapture(event.pointerId);
      const point = local(event);
      if (event.target.closest(".viewer-divider")) {
        this.#dragDivider = event.pointerId;
        event.preventDefault(); // keep the focus on the knob rather than dropping it
        return;
      }
      this.#pointers.set(event.pointerId, point);
      if (this.#pointers.size === 1) {
        this.#gesture = {start: point, at: event.timeStamp, type: event.pointerType, pinched: false};
      } else if (this.#gesture) {
        this.#gesture.pinched = true;
      }
      canvas.classList.add("is-dragging");
    });

    canvas.addEventListener("pointermove", (event) => {
      const point = local(event);
      if (this.#dragDivider === event.pointerId) {
        this.#setDivider(this.#zoom.fractionAt(point.x) * 100);
        return;
      }
      const previous = this.#pointers.get(event.pointerId);
      if (!previous) return;
      if (this.#pointers.size === 1) {
        if (this.#zoom.pannable) this.#zoomed(() => this.#zoom.panBy(point.x - previous.x, point.y - previous.y));
      } else if (this.#pointers.size === 2) {
        const [other] = [...this.#pointers].filter(([id]) => id !== event.pointerId).map(([, p]) => p);
        const before = {dist: Math.hypot(previous.x - other.x, previous.y - other.y),
          mid: {x: (previous.x + other.x) / 2, y: (previous.y + other.y) / 2}};
        const after = {dist: Math.hypot(point.x - other.x, point.y - other.y),
          mid: {x: (point.x + other.x) / 2, y: (point.y + other.y) / 2}};
        if (before.dist > 0) this.#zoomed(() => this.#zoom.pinch(after.dist / before.dist, before.mid, after.mid));
      }
      this.#pointers.set(event.pointerId, point);
    });

    const end = (event) => {
      if (this.#dragDivider === event.pointerId) {
        this.#dragDivider = null;
        return;
      }
      if (!this.#pointers.delete(event.pointerId)) return;
      if (this.#pointers.size) return;
      canvas.classList.remove("is-dragging");
      const gesture = this.#gesture;
      this.#gesture = null;
      if (!gesture || gesture.pinched || gesture.type !== "touch" || event.type === "pointercancel") return;
      const point = local(event);
      const dx = point.x - gesture.start.x;
      const dy = point.y - gesture.start.y;
      // A swipe on a fitted picture changes picture; a double tap zooms like a double click.
      if (!this.#zoom.pannable && Math.abs(dx) > SWIPE_MIN && Math.abs(dx) > 2 * Math.abs(dy)) {
        this.#go(dx < 0 ? 1 : -1);
        return;
      }
      if (Math.hypot(dx, dy) < 10) {
        const last = this.#lastTap;
        if (last && event.timeStamp - last.at < DOUBLE_TAP_MS && Math.hypot(point.x - last.x, point.y - last.y) < 30) {
          this.#lastTap = null;
          this.#zoomed(() => this.#zoom.toggleActual(point));
        } else {
          this.#lastTap = {...point, at: event.timeStamp};
        }
      }
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
  }

  // -------------------------------------------------------------------------------------------------------
  // The card's "Use as …" menu.

  #buildMenu() {
    const menu = h("div", {class: "use-as-menu", id: "use-as-menu", popover: "auto", "aria-label": t("use_as.title")});
    // beforetoggle, not toggle: it comes at once, while the opener it concerns is still the one recorded.
    menu.addEventListener("beforetoggle", (event) => {
      if (event.newState !== "closed" || !this.#menuOpener) return;
      const opener = this.#menuOpener;
      this.#menuOpener = null;
      opener.setAttribute("aria-expanded", "false");
      // Esc or a click elsewhere: back to the button, unless the user has put the focus somewhere else.
      if (!document.activeElement || document.activeElement === document.body || menu.contains(document.activeElement)) {
        opener.focus({preventScroll: true});
      }
    });
    menu.addEventListener("keydown", (event) => {
      if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
      event.preventDefault();
      const links = [...menu.querySelectorAll("a")];
      const index = links.indexOf(document.activeElement);
      const step = event.key === "ArrowDown" ? 1 : -1;
      links[(index + step + links.length) % links.length]?.focus();
    });
    menu.addEventListener("click", (event) => {
      // A link to this same page only changes the address; the menu has done its job either way.
      if (event.target.closest("a")) menu.hidePopover();
    });
    return menu;
  }

  #openMenu(button) {
    const card = button.closest(".card");
    const task = cardTask(card);
    if (!task?.image_url) return;
    const menu = this.#menu;
    const pressed = this.#pressedOpener;
    this.#pressedOpener = null;
    if (pressed === button) return;
    if (menu.matches(":popover-open")) {
      const same = this.#menuOpener === button;
      menu.hidePopover();
      if (same) return;
    }
    menu.replaceChildren(h("p", {class: "use-as-title", text: t("use_as.title")}), useAsLinks(task, this.#typePaths));
    this.#menuOpener = button;
    button.setAttribute("aria-expanded", "true");
    menu.showPopover();
    // Below the button, or above it when there is no room; never past the window's edges.
    const anchor = button.getBoundingClientRect();
    const {width, height} = menu.getBoundingClientRect();
    const left = Math.max(8, Math.min(anchor.right - width, innerWidth - width - 8));
    const below = anchor.bottom + 6;
    const top = below + height <= innerHeight - 8 ? below : Math.max(8, anchor.top - height - 6);
    menu.style.left = `${left}px`;
    menu.style.top = `${top}px`;
    menu.querySelector("a")?.focus();
  }
}
