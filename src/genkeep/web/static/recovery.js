// The task recovery client: finds a page's unfinished generation tasks and watches them until they finish.
//
// One ES module, no dependencies and no DOM access: whatever renders the tasks does it in the callbacks, so any
// front end (these pages, another site, a script under Node) can use it.
//
//   const monitor = new TaskMonitor({type: "CREATE", onTask, onFinish, onGone, onConnection});
//   await monitor.start();      // lists the unfinished CREATE tasks and reports each through onTask
//   monitor.watch(createdTask); // a task this page just started joins the same monitor at once
//
// How it polls, and why:
// - One timer for the page, ticking every `intervalMs` (2,000 ms, R2.2). Each tick is planned from the previous
//   planned time, never from when a response arrived, so slow answers do not stretch the cadence.
// - Each tick lists the type's unfinished tasks in one request (GET /api/tasks?type=T&status=pending&
//   status=processing). That one request reports the status and progress of every monitored task at once, and
//   also brings in tasks started in another tab within one interval. A monitored task that is missing from the
//   list has finished (or was deleted), so it is fetched once by id to learn its final state.
// - Never two requests for the same thing at once: while the previous list (or a task's fetch) is still out, a
//   tick starts no other; it reports "reconnecting" instead, and a request that outlasts `requestTimeoutMs` is
//   abandoned so a hung connection cannot stall monitoring for good.
// - Failures (rejections, 5xx, timeouts) never end monitoring: the state becomes "reconnecting", the cadence
//   stays, and the next success brings back "ok".

const UNFINISHED = ["pending", "processing"];

export const isFinished = (task) => task.status === "completed" || task.status === "failed";

const realClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle),
};

function report(error) {
  // A rendering callback that throws must not stop the monitor; surface it the way the platform would.
  if (typeof globalThis.reportError === "function") globalThis.reportError(error);
  else console.error(error);
}

function moment(task) {
  const parsed = Date.parse(task.updated_at ?? "");
  return Number.isNaN(parsed) ? -Infinity : parsed;
}

class HttpError extends Error {
  constructor(status) {
    super(`HTTP ${status}`);
    this.status = status;
  }
}

export class TaskMonitor {
  #type;
  #fetch;
  #clock;
  #interval;
  #timeout;
  #base;
  #credentials;
  #on;

  #tasks = new Map(); // id -> {task, joinedRound}: the monitored (unfinished) tasks
  #done = new Set(); // ids that finished or vanished here: a stale list answer must never bring them back
  #round = 0; // counts list rounds, so a task that joined after a list went out is not judged by it
  #list = null; // the list round in flight: {round, startedAt, controller}
  #byId = new Map(); // id -> {startedAt, controller}: single-task fetches in flight
  #timer = null;
  #nextAt = 0;
  #running = false;
  #connection = "ok";

  /**
   * @param {object} options
   * @param {string|null} [options.type] the generation type this page shows; null follows every type
   * @param {Function} [options.fetch] defaults to the global fetch
   * @param {{now(): number, setTimeout(fn, ms): any, clearTimeout(handle): void}} [options.clock]
   * @param {number} [options.intervalMs] poll cadence, 2000 by default (R2.2)
   * @param {number} [options.requestTimeoutMs] a request older than this is abandoned at the next tick
   * @param {string} [options.baseUrl] where the API lives, "" for the same origin
   * @param {RequestCredentials} [options.credentials] "include" when the API is on another origin
   * @param {(task: object, previous: object|undefined) => void} [options.onTask] a task joined or changed
   * @param {(task: object) => void} [options.onFinish] a monitored task completed or failed; it is no longer polled
   * @param {(id: string, previous: object) => void} [options.onGone] a monitored task no longer exists (404)
   * @param {(state: "ok"|"reconnecting") => void} [options.onConnection] called when the state changes
   */
  constructor({
    type = null,
    fetch = globalThis.fetch?.bind(globalThis),
    clock = realClock,
    intervalMs = 2000,
    requestTimeoutMs = 15000,
    baseUrl = "",
    credentials = "same-origin",
    onTask = () => {},
    onFinish = () => {},
    onGone = () => {},
    onConnection = () => {},
  } = {}) {
    if (typeof fetch !== "function") throw new TypeError("TaskMonitor needs a fetch function");
    this.#type = type;
    this.#fetch = fetch;
    this.#clock = clock;
    this.#interval = intervalMs;
    this.#timeout = Math.max(requestTimeoutMs, intervalMs);
    this.#base = baseUrl.replace(/\/+$/, "");
    this.#credentials = credentials;
    this.#on = {onTask, onFinish, onGone, onConnection};
  }

  /** The tasks being monitored now, newest first. */
  get tasks() {
    return [...this.#tasks.values()]
      .map((entry) => entry.task)
      .sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
  }

  /** "ok", or "reconnecting" while requests fail or hang. */
  get connection() {
    return this.#connection;
  }

  get running() {
    return this.#running;
  }

  /** Starts the clock and recovers the unfinished tasks; resolves once that first list has been answered. */
  async start() {
    if (this.#running) return;
    this.#running = true;
    this.#nextAt = this.#clock.now() + this.#interval;
    this.#arm();
    await this.#startList();
  }

  /** Stops the clock and abandons requests in flight; callbacks stop. */
  stop() {
    this.#running = false;
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#list?.controller?.abort();
    this.#list = null;
    for (const pending of this.#byId.values()) pending.controller?.abort();
    this.#byId.clear();
  }

  /**
   * Hands the monitor a task this page learned about (created, retried, canceled): an unfinished one of the
   * page's type joins at once; a finished one that was monitored finishes. Returns true if the monitor took it.
   */
  watch(task) {
    if (!task || !this.#accepts(task)) return false;
    return this.#absorb(task);
  }

  /** Stops monitoring one task without a callback (the page removed it itself). */
  forget(id) {
    this.#tasks.delete(id);
    this.#done.add(id);
  }

  #accepts(task) {
    return this.#type == null || task.type === this.#type;
  }

  // Takes in a fresh view of a task; returns whether it is (or just became) monitored or finished here.
  #absorb(task) {
    const entry = this.#tasks.get(task.id);
    if (!entry) {
      if (this.#done.has(task.id) || isFinished(task)) return false;
      this.#tasks.set(task.id, {task, joinedRound: this.#round});
      this.#call("onTask", task, undefined);
      return true;
    }
    const previous = entry.task;
    // Answers can overtake each other; an older view of the task must not undo a newer one. A final status
    // always wins, whatever the clocks of the machines that wrote updated_at say.
    if (!isFinished(task) && moment(task) < moment(previous)) return true;
    if (isFinished(task)) {
      this.#tasks.delete(task.id);
      this.#done.add(task.id);
      this.#byId.get(task.id)?.controller?.abort();
      this.#byId.delete(task.id);
      this.#call("onFinish", task);
      return true;
    }
    entry.task = task;
    if (task.status !== previous.status || task.progress !== previous.progress
        || task.updated_at !== previous.updated_at) {
      this.#call("onTask", task, previous);
    }
    return true;
  }

  #call(name, ...args) {
    try {
      this.#on[name](...args);
    } catch (error) {
      report(error);
    }
  }

  #arm() {
    const delay = Math.max(0, this.#nextAt - this.#clock.now());
    this.#timer = this.#clock.setTimeout(() => this.#tick(), delay);
  }

  #tick() {
    if (!this.#running) return;
    const now = this.#clock.now();
    // Planned from the previous planned time, so the cadence holds whatever the responses do. After a long
    // stall (a sleeping laptop) the missed ticks are skipped, not replayed in a burst.
    this.#nextAt += this.#interval;
    while (this.#nextAt <= now) this.#nextAt += this.#interval;
    this.#arm();

    this.#abandonStale(now);
    if (this.#list) {
      this.#setConnection("reconnecting");
      return;
    }
    this.#startList();
  }

  #abandonStale(now) {
    if (this.#list && now - this.#list.startedAt >= this.#timeout) {
      this.#list.controller?.abort();
      this.#list = null;
    }
    for (const [id, pending] of this.#byId) {
      if (now - pending.startedAt >= this.#timeout) {
        pending.controller?.abort();
        this.#byId.delete(id);
      }
    }
  }

  async #startList() {
    const round = ++this.#round;
    const controller = typeof AbortController === "function" ? new AbortController() : null;
    const inFlight = {round, startedAt: this.#clock.now(), controller};
    this.#list = inFlight;
    let items;
    try {
      items = await this.#listUnfinished(controller);
    } catch (error) {
      if (this.#list === inFlight) {
        this.#list = null;
        this.#setConnection("reconnecting");
      }
      return;
    }
    if (this.#list !== inFlight || !this.#running) return; // abandoned or stopped meanwhile
    this.#list = null;
    this.#setConnection("ok");

    const listed = new Set();
    // Oldest first, so a page that puts each new card on top ends up newest first.
    for (const task of items.slice().reverse()) {
      if (!this.#accepts(task)) continue; // defence in depth: the server filters by type already
      listed.add(task.id);
      this.#absorb(task);
    }
    for (const [id, entry] of this.#tasks) {
      // Gone from the unfinished list: finished or deleted. Only a list sent after the task joined can tell.
      if (!listed.has(id) && entry.joinedRound < round) this.#fetchOne(id);
    }
  }

  async #listUnfinished(controller) {
    const items = [];
    let cursor = null;
    do {
      const params = new URLSearchParams();
      if (this.#type != null) params.set("type", this.#type);
      for (const status of UNFINISHED) params.append("status", status);
      params.set("limit", "100");
      if (cursor) params.set("cursor", cursor);
      const page = await this.#getJson(`/api/tasks?${params}`, controller);
      items.push(...(page.items ?? []));
      cursor = page.next_cursor ?? null;
    } while (cursor);
    return items;
  }

  async #fetchOne(id) {
    if (this.#byId.has(id)) return;
    const controller = typeof AbortController === "function" ? new AbortController() : null;
    const inFlight = {startedAt: this.#clock.now(), controller};
    this.#byId.set(id, inFlight);
    try {
      const task = await this.#getJson(`/api/tasks/${encodeURIComponent(id)}`, controller);
      if (this.#byId.get(id) !== inFlight || !this.#running) return;
      this.#byId.delete(id);
      this.#setConnection("ok");
      this.#absorb(task);
    } catch (error) {
      if (this.#byId.get(id) !== inFlight || !this.#running) return;
      this.#byId.delete(id);
      if (error instanceof HttpError && error.status === 404) {
        this.#setConnection("ok");
        const entry = this.#tasks.get(id);
        if (entry) {
          this.forget(id);
          this.#call("onGone", id, entry.task);
        }
        return;
      }
      // Tried again at the next tick: the task will still be missing from the list.
      this.#setConnection("reconnecting");
    }
  }

  async #getJson(path, controller) {
    const response = await this.#fetch(this.#base + path, {
      method: "GET",
      headers: {Accept: "application/json"},
      cache: "no-store",
      credentials: this.#credentials,
      signal: controller?.signal,
    });
    if (!response.ok) throw new HttpError(response.status);
    return response.json();
  }

  #setConnection(state) {
    if (state === this.#connection) return;
    this.#connection = state;
    this.#call("onConnection", state);
  }
}
