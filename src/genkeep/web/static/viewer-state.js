// The result viewer's state, with no DOM: which task the address names, where it sits in the page's list, the
// zoom and pan of the picture, and the before/after divider. viewer.js draws it; tests/js/viewer-state.test.mjs
// runs it under Node.

const HASH_KEY = "task";
// Task ids are opaque to the page; this only keeps odd text out of the API path it is sent to.
const PLAIN_ID = /^[A-Za-z0-9_-]{1,128}$/;

const hashParams = (hash) => new URLSearchParams(String(hash ?? "").replace(/^#/, ""));

/** A plain-looking id, or null: what the page may put into an API path. */
export function plainId(id) {
  return typeof id === "string" && PLAIN_ID.test(id) ? id : null;
}

/** The task id in an address hash such as "#task=3f2a…", or null. */
export function taskIdFromHash(hash) {
  return plainId(hashParams(hash).get(HASH_KEY));
}

/** The hash with the task id set (or removed, for null); anything else in it is kept. "" when nothing is left. */
export function hashWithTask(hash, id) {
  const params = hashParams(hash);
  if (id) params.set(HASH_KEY, id);
  else params.delete(HASH_KEY);
  const text = params.toString();
  return text ? `#${text}` : "";
}

/** Where `id` sits among the page's finished tasks: its 0-based index (-1 if absent) and its two neighbours. */
export function neighbours(ids, id) {
  const index = ids.indexOf(id);
  return {
    index,
    count: ids.length,
    previous: index > 0 ? ids[index - 1] : null,
    next: index >= 0 && index < ids.length - 1 ? ids[index + 1] : null,
  };
}

/**
 * The open viewer kept in the address, so a reload or a shared link (same owner) reopens it.
 *
 * Opening from a closed viewer adds a history entry, so the browser's Back button (or a phone's back gesture)
 * closes the viewer instead of leaving the page; moving to another task replaces that entry, so Back does not
 * step through every picture seen. Closing goes back to the entry before, if this document added it, and
 * otherwise (the page was loaded with the hash) removes the hash in place.
 */
export class ViewerRoute {
  #history;
  #pushed = false;

  /** @param {{history: {hash(): string, push(hash: string): void, replace(hash: string): void, back(): void}}} options */
  constructor({history}) {
    this.#history = history;
  }

  /** The task the address names, or null. */
  get taskId() {
    return taskIdFromHash(this.#history.hash());
  }

  open(id) {
    const current = this.taskId;
    if (current === id) return;
    const hash = hashWithTask(this.#history.hash(), id);
    if (current) {
      this.#history.replace(hash);
    } else {
      this.#history.push(hash);
      this.#pushed = true;
    }
  }

  close() {
    if (!this.taskId) return;
    if (this.#pushed) {
      this.#pushed = false;
      this.#history.back();
    } else {
      this.#history.replace(hashWithTask(this.#history.hash(), null));
    }
  }

  /** The address changed by itself (Back, Forward, a typed hash): the task it names now, or null. */
  changed() {
    const id = this.taskId;
    // Once our entry is left behind, going "back" on close would leave the page; forget it.
    if (!id) this.#pushed = false;
    return id;
  }
}

/** The divider's new position (0-100) after a key press, or null for a key the divider does not use. */
export function dividerAfterKey(value, key, {step = 5, page = 25} = {}) {
  const moves = {
    ArrowLeft: -step, ArrowDown: -step, ArrowRight: step, ArrowUp: step, PageDown: -page, PageUp: page,
  };
  if (key === "Home") return 0;
  if (key === "End") return 100;
  if (!(key in moves)) return null;
  return clamp(value + moves[key], 0, 100);
}

const clamp = (value, low, high) => Math.min(high, Math.max(low, value));

/**
 * The picture's zoom and pan in a viewport, in CSS pixels: the picture is drawn at its natural size, moved by
 * (x, y) and scaled by `scale` from its top-left corner. It opens fitted to the viewport (never enlarged past
 * 100 %, so a small image stays sharp), zooms around a point that stays under the pointer, and is kept where it
 * can be seen: centred along an axis where it is smaller than the viewport, edge to edge where it is larger.
 */
export class ZoomPan {
  #viewWidth = 0;
  #viewHeight = 0;
  #imageWidth = 0;
  #imageHeight = 0;
  #scale = 1;
  #x = 0;
  #y = 0;
  #maxScale;
  #fitted = true;

  constructor({maxScale = 4} = {}) {
    this.#maxScale = maxScale;
  }

  get scale() { return this.#scale; }
  get x() { return this.#x; }
  get y() { return this.#y; }
  get percent() { return Math.round(this.#scale * 100); }
  /** The scale at which the whole picture fits the viewport, at most 1. */
  get fitScale() {
    if (!this.#imageWidth || !this.#imageHeight || !this.#viewWidth || !this.#viewHeight) return 1;
    return Math.min(this.#viewWidth / this.#imageWidth, this.#viewHeight / this.#imageHeight, 1);
  }
  get maxScale() { return Math.max(this.#maxScale, this.fitScale); }
  get fitted() { return this.#fitted; }
  get canZoomIn() { return this.#scale < this.maxScale - 1e-9; }
  get canZoomOut() { return this.#scale > this.fitScale + 1e-9; }
  /** Whether dragging moves the picture: some of it is out of view. */
  get pannable() {
    return this.#imageWidth * this.#scale > this.#viewWidth + 0.5
      || this.#imageHeight * this.#scale > this.#viewHeight + 0.5;
  }

  /** A new picture: fitted. */
  load(width, height) {
    this.#imageWidth = width;
    this.#imageHeight = height;
    this.fit();
  }

  /** The viewport changed size (a rotated phone, a resized window): a fitted picture stays fitted. */
  resize(width, height) {
    // A zoomed picture keeps the point that was in the middle of the view in the middle.
    const middle = this.#center();
    const dx = width / 2 - middle.x;
    const dy = height / 2 - middle.y;
    this.#viewWidth = width;
    this.#viewHeight = height;
    if (this.#fitted) {
      this.fit();
    } else {
      this.#x += dx;
      this.#y += dy;
      this.#setScale(this.#scale, this.#center());
    }
  }

  fit() {
    this.#scale = this.fitScale;
    this.#fitted = true;
    this.#place();
  }

  /** Zooms so the picture point under `at` (viewport coordinates) stays there; the centre by default. */
  zoomTo(scale, at = this.#center()) {
    this.#setScale(scale, at);
  }

  zoomBy(factor, at = this.#center()) {
    this.#setScale(this.#scale * factor, at);
  }

  /** Fitted → 100 % (or 2x for a picture smaller than the viewport) around `at`; otherwise back to fitted. */
  toggleActual(at = this.#center()) {
    if (!this.#fitted) {
      this.fit();
      return;
    }
    const fit = this.fitScale;
    this.#setScale(fit < 1 - 1e-9 ? 1 : Math.min(2, this.maxScale), at);
  }

  panBy(dx, dy) {
    this.#x += dx;
    this.#y += dy;
    this.#place();
  }

  /** Two fingers: the distance between them changed by `factor` and their midpoint moved `from` → `to`. */
  pinch(factor, from, to) {
    this.#setScale(this.#scale * factor, from);
    this.panBy(to.x - from.x, to.y - from.y);
  }

  /** The picture's box in the viewport, as drawn. */
  get box() {
    return {left: this.#x, top: this.#y, width: this.#imageWidth * this.#scale,
      height: this.#imageHeight * this.#scale};
  }

  /** Where a viewport x falls across the picture's width, 0 (left edge) to 1 (right edge). */
  fractionAt(viewX) {
    const width = this.#imageWidth * this.#scale;
    return width > 0 ? clamp((viewX - this.#x) / width, 0, 1) : 0.5;
  }

  #center() {
    return {x: this.#viewWidth / 2, y: this.#viewHeight / 2};
  }

  #setScale(scale, at) {
    const next = clamp(scale, this.fitScale, this.maxScale);
    // The picture point under `at` before the zoom is under `at` after it.
    const px = (at.x - this.#x) / this.#scale;
    const py = (at.y - this.#y) / this.#scale;
    this.#scale = next;
    this.#x = at.x - px * next;
    this.#y = at.y - py * next;
    this.#fitted = Math.abs(next - this.fitScale) < 1e-9;
    this.#place();
  }

  #place() {
    this.#x = placed(this.#x, this.#imageWidth * this.#scale, this.#viewWidth);
    this.#y = placed(this.#y, this.#imageHeight * this.#scale, this.#viewHeight);
  }
}

function placed(offset, size, view) {
  if (size <= view) return (view - size) / 2;
  return clamp(offset, view - size, 0);
}
