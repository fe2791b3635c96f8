// Batches: many tasks started from one drop (or one CREATE with variations), told as one. No DOM.
//
// A task carries its `batch` id. The page learns a batch's tasks from three places: the upload queue (a photo
// the server took), the recovery client (the unfinished ones, listed every tick) and, once per batch it did not
// start itself, GET /api/tasks?batch=<id> (paged): after a reload only that tells the finished ones, so the
// batch card accounts for every photo. After that one listing the monitor's ticks keep it current: a batch
// costs no request of its own.

const FINISHED = new Set(["completed", "failed"]);

/** A new batch id: 1-64 characters of [A-Za-z0-9_-], as the API takes. */
export function newBatchId() {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * One batch as the seller sees it, from its tasks and its upload records (uploads.js):
 * - done / failed / waiting (pending: in line, its clock not started) / running (processing);
 * - `total`: every photo, sent or not (a sent photo whose task is not known here yet counts once);
 * - `uploads`: the queue's tally for the batch (null when the queue has no record of it);
 * - `settled`: nothing is left to send or to finish; `startedAt` / `endedAt` from the tasks' own (server) times.
 */
export function batchSummary(tasks, records = [], uploads = null) {
  const counts = {done: 0, failed: 0, waiting: 0, running: 0};
  const ids = new Set();
  let startedAt = Infinity;
  let endedAt = -Infinity;
  for (const task of tasks) {
    ids.add(task.id);
    if (task.status === "completed") counts.done += 1;
    else if (task.status === "failed") counts.failed += 1;
    else if (task.status === "pending") counts.waiting += 1;
    else counts.running += 1;
    startedAt = Math.min(startedAt, Date.parse(task.created_at));
    if (FINISHED.has(task.status)) endedAt = Math.max(endedAt, Date.parse(task.finished_at ?? task.updated_at));
  }
  let unsent = 0;
  let refused = 0;
  let sentUnknown = 0; // sent, and its task not heard of yet
  for (const record of records) {
    if (record.state === "queued") unsent += 1;
    else if (record.state === "refused") refused += 1;
    else if (!ids.has(record.taskId)) sentUnknown += 1;
  }
  const unfinished = counts.waiting + counts.running + sentUnknown;
  const settled = unsent === 0 && unfinished === 0;
  return {
    ...counts,
    refused,
    unsent,
    total: tasks.length + sentUnknown + unsent + refused,
    uploads,
    settled,
    startedAt: Number.isFinite(startedAt) ? startedAt : null,
    endedAt: settled && Number.isFinite(endedAt) ? endedAt : null,
  };
}

/** A batch's tasks as the page knows them, and the one listing per batch that tells the finished ones. */
export class BatchBook {
  #fetch;
  #type;
  #base;
  #on;
  #batches = new Map(); // batch id -> Map(task id -> task)
  #listed = new Map(); // batch id -> Promise of its listing (asked once)

  /**
   * @param {object} options
   * @param {Function} [options.fetch]
   * @param {string|null} [options.type] the page's type, sent with the listing
   * @param {string} [options.baseUrl]
   * @param {(batch: string) => void} [options.onChange] a batch's tasks changed
   */
  constructor({fetch = globalThis.fetch?.bind(globalThis), type = null, baseUrl = "", onChange = () => {}} = {}) {
    this.#fetch = fetch;
    this.#type = type;
    this.#base = baseUrl.replace(/\/+$/, "");
    this.#on = {onChange};
  }

  /** Takes a fresh view of a task; one without a batch is not this book's. Returns its batch id, or null. */
  see(task) {
    if (!task?.batch) return null;
    let tasks = this.#batches.get(task.batch);
    if (!tasks) this.#batches.set(task.batch, tasks = new Map());
    const known = tasks.get(task.id);
    // A final status always wins; otherwise an older view (a late answer) must not undo a newer one.
    if (known && !FINISHED.has(task.status)
        && (FINISHED.has(known.status) || Date.parse(task.updated_at) < Date.parse(known.updated_at))) {
      return task.batch;
    }
    tasks.set(task.id, task);
    this.#changed(task.batch);
    return task.batch;
  }

  /** A task was deleted: it leaves its batch. */
  gone(id) {
    for (const [batch, tasks] of this.#batches) {
      if (tasks.delete(id)) this.#changed(batch);
    }
  }

  /** This page started the batch: it saw every task from its start, so no listing is needed. */
  started(batch) {
    if (!this.#batches.has(batch)) this.#batches.set(batch, new Map());
    this.#listed.set(batch, Promise.resolve());
  }

  has(batch) {
    return this.#batches.has(batch);
  }

  /** The batch's tasks, oldest first. */
  tasks(batch) {
    return [...(this.#batches.get(batch)?.values() ?? [])]
      .sort((a, b) => Date.parse(a.created_at) - Date.parse(b.created_at));
  }

  /** The batch containing a task, or null. */
  batchOf(id) {
    for (const [batch, tasks] of this.#batches) if (tasks.has(id)) return batch;
    return null;
  }

  forget(batch) {
    this.#batches.delete(batch);
    this.#listed.delete(batch);
  }

  /**
   * Lists the batch's tasks (all statuses, 100 a page, following next_cursor), once per batch: a failed listing
   * may be asked again. Resolves when it is in.
   */
  load(batch) {
    let listing = this.#listed.get(batch);
    if (!listing) {
      listing = this.#list(batch).catch((error) => {
        this.#listed.delete(batch);
        throw error;
      });
      this.#listed.set(batch, listing);
    }
    return listing;
  }

  async #list(batch) {
    let cursor = null;
    do {
      const params = new URLSearchParams({batch, limit: "100"});
      if (this.#type) params.set("type", this.#type);
      if (cursor) params.set("cursor", cursor);
      const response = await this.#fetch(`${this.#base}/api/tasks?${params}`, {
        headers: {Accept: "application/json"}, cache: "no-store", credentials: "same-origin",
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const page = await response.json();
      for (const task of page.items ?? []) this.see(task);
      cursor = page.next_cursor ?? null;
    } while (cursor);
  }

  #changed(batch) {
    try {
      this.#on.onChange(batch);
    } catch (error) {
      if (typeof globalThis.reportError === "function") globalThis.reportError(error);
      else console.error(error);
    }
  }
}

/** A link to the ZIP of some finished results: a whole batch, or chosen tasks (the server takes up to 200). */
export function zipUrl({batch = null, ids = []} = {}) {
  const params = new URLSearchParams();
  if (batch) params.set("batch", batch);
  for (const id of ids) params.append("id", id);
  return `/api/results.zip?${params}`;
}
