// The task recovery client: finds a page's unfinished generation tasks and watches them until they finish.
//
// One ES module, no dependencies and no DOM access: whatever renders the tasks does it in the callbacks, so any
// front end (these pages, another site, a script under Node) can use it.
//
//   const monitor = new TaskMonitor({type: "CREATE", onTask, onFinish, onGone, onConnection});
//   await monitor.start();      // lists the unfinished CREATE tasks and reports each through onTask
//   monitor.watch(createdTask); // a task this page just started joins the same monitor at once
//   monitor.refresh();          // the page came back into view: list again (at most once per interval)
//
// How it polls, and why:
// - One timer for the page, ticking every `intervalMs` (2,000 ms, R2.2) while anything is unfinished. Each tick
//   is planned from the previous planned time, never from when a response arrived, so slow answers do not
//   stretch the cadence.
// - Each tick lists the type's unfinished tasks in one request (GET /api/tasks?type=T&status=pending&
//   status=processing). That one request reports the status and progress of every monitored task at once, and
//   also brings in tasks started elsewhere meanwhile. A monitored task that is missing from the list has
//   finished (or was deleted), so it is fetched once by id to learn its final state.
// - Idle costs nothing: with nothing unfinished (and no request out or failing) the timer is not armed at all, so
//   an idle page makes no request. What could change its view then comes from three places:
//   * another tab of this browser, through a BroadcastChannel: the tab that starts, retries, cancels or deletes a
//     task posts {id, type, status}, and every other monitor of that type fetches the task at once (and starts
//     ticking if it is unfinished). Tabs do not echo what they hear, and a finish that a tab only saw by polling
//     is not posted: every tab monitoring the task sees it by its own poll within one interval, and posting it
//     would cost one request per tab per tab;
//   * the page coming back into view (`refresh()`, wired to visibilitychange, focus and pageshow by the page):
//     one list, skipped if one went out less than one interval ago, so visible and focus together make one;
//   * nothing else: a task started from another browser or device shows at the next refresh, or at the next
//     tick if the page is monitoring something anyway.
// - A hidden tab keeps ticking while something is unfinished (R2.2 asks for a poll every 2 s while a task is
//   monitored, and the finished image should be there when the tab is shown). Browsers may throttle a hidden
//   tab's timers; a refresh on showing the page lists at once if the last list is older than one interval.
// - Never two requests for the same thing at once: while the previous list (or a task's fetch) is still out, a
//   tick starts no other; it reports "reconnecting" instead, and a request that outlasts `requestTimeoutMs` is
//   abandoned so a hung connection cannot stall monitoring for good.
// - Failures (rejections, 5xx, timeouts) never end monitoring: the state becomes "reconnecting", the cadence
//   stays (even with nothing known to be unfinished: the page cannot know until a list is answered), and the
//   next success brings back "ok".
// - The server's clock: a task's times are the server's (on PostgreSQL the database's), and a browser's clock may
//   be minutes off, so "running for ..." counts from `serverNow()`: the browser's clock corrected by the offset
//   the latest answer told (its SERVER_CLOCK_HEADER, in milliseconds, taken as of the middle of the request).

const UNFINISHED = ["pending", "processing"];

/** The answer header that tells the server's time now, in milliseconds since the epoch. */
export const SERVER_CLOCK_HEADER = "Genkeep-Clock";

/** The BroadcastChannel name the pages of one origin share task news on. */
export const CHANNEL_NAME = "genkeep.tasks";

export const isFinished = (task) => task.status === "completed" || task.status === "failed";

/** The browser's clock, as the modules here take one (tests pass a fake). */
export const realClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle),
};

/** A BroadcastChannel to the origin's other pages, where the browser has them (else null: nobody to tell). */
export const broadcastChannel = (name) =>
  typeof globalThis.BroadcastChannel === "function" ? new globalThis.BroadcastChannel(name) : null;

const openBroadcastChannel = () => broadcastChannel(CHANNEL_NAME);

/** A callback that throws must not stop the module calling it: surfaced the way the platform would. */
export function report(error) {
  if (typeof globalThis.reportError === "function") globalThis.reportError(error);
  else console.error(error);
}

/** The channel `open` gives (null where there is none), heard by `onMessage`; null if it cannot be opened (no news
 * from other tabs: a refresh or a tick still finds what they did). */
export function joinChannel(open, onMessage) {
  try {
    const channel = open?.() ?? null;
    channel?.addEventListener("message", onMessage);
    return channel;
  } catch (error) {
    report(error);
    return null;
  }
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
  #openChannel;
  #interval;
  #timeout;
  #base;
  #credentials;
  #on;

  #tasks = new Map(); // id -> {task, joinedRound}: the monitored (unfinished) tasks
  #done = new Set(); // ids that finished or vanished here: a stale list answer must never bring them back
  #round = 0; // counts list rounds, so a task that joined after a list went out is not judged by it
  #list = null; // the list round in flight: {round, startedAt, controller}
  #lastListAt = -Infinity; // when the last list went out, so a refresh right after one is skipped
  #byId = new Map(); // id -> {startedAt, controller}: single-task fetches in flight
  #timer = null; // armed only while something is unfinished, out or failing: an idle page has no timer
  #nextAt = 0;
  #running = false;
  #connection = "ok";
  #clockOffset = 0; // the server's clock minus the page's, as the latest answer told
  #channel = null; // open between start() and stop()
  #hear = (event) => this.#heard(event?.data);

  /**
   * @param {object} options
   * @param {string|null} [options.type] the generation type this page shows; null follows every type
   * @param {Function} [options.fetch] defaults to the global fetch
   * @param {{now(): number, setTimeout(fn, ms): any, clearTimeout(handle): void}} [options.clock]
   * @param {() => ({postMessage(data): void, addEventListener(type, fn): void, removeEventListener(type, fn): void,
   *   close?(): void}|null)} [options.openChannel] opens the channel other tabs' monitors share (called by start,
   *   closed by stop); by default a BroadcastChannel named CHANNEL_NAME, or none where there is no such thing
   * @param {number} [options.intervalMs] poll cadence, 2000 by default (R2.2)
   * @param {number} [options.requestTimeoutMs] a request older than this is abandoned at the next tick
   * @param {string} [options.baseUrl] where the API lives, "" for the same origin
   * @param {RequestCredentials} [options.credentials] "include" when the API is on another origin
   * @param {(task: object, previous: object|undefined) => void} [options.onTask] a task joined or changed
   * @param {(task: object) => void} [options.onFinish] a monitored task completed or failed, and is no longer
   *   polled; or a task another tab told of that had already finished when it was fetched
   * @param {(id: string, previous: object|undefined) => void} [options.onGone] a task no longer exists (404, or
   *   another tab deleted it); previous is its last view if it was monitored
   * @param {(state: "ok"|"reconnecting") => void} [options.onConnection] called when the state changes
   */
  constructor({
    type = null,
    fetch = globalThis.fetch?.bind(globalThis),
    clock = realClock,
    openChannel = openBroadcastChannel,
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
    this.#openChannel = openChannel;
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

  /**
   * The server's time now (ms since the epoch), for elapsed times: the page's clock until an answer tells the
   * server's.
   */
  serverNow() {
    return this.#clock.now() + this.#clockOffset;
  }

  /** "ok", or "reconnecting" while requests fail or hang. */
  get connection() {
    return this.#connection;
  }

  get running() {
    return this.#running;
  }

  /** Whether the 2-second clock is armed: false on an idle page, which makes no request until told of news. */
  get ticking() {
    return this.#timer !== null;
  }

  /** Recovers the unfinished tasks (ticking while there are any); resolves once that first list is answered. */
  async start() {
    if (this.#running) return;
    this.#running = true;
    this.#channel = joinChannel(this.#openChannel, this.#hear);
    await this.#listNow();
  }

  /** Stops the clock, abandons requests in flight and closes the channel; callbacks stop. */
  stop() {
    this.#running = false;
    this.#disarm();
    this.#list?.controller?.abort();
    this.#list = null;
    for (const pending of this.#byId.values()) pending.controller?.abort();
    this.#byId.clear();
    if (this.#channel) {
      this.#channel.removeEventListener("message", this.#hear);
      this.#channel.close?.();
      this.#channel = null;
    }
  }

  /**
   * The page is back in view (visible again, focused, restored from the back/forward cache): lists the
   * unfinished tasks now, unless a list is out or one went out less than one interval ago. While the clock is
   * ticking on time this does nothing; after an idle spell it picks up tasks started from another browser.
   * Resolves once that list is answered (at once if none was needed).
   */
  async refresh() {
    if (!this.#running) return;
    const now = this.#clock.now();
    this.#abandonStale(now);
    if (this.#list || now - this.#lastListAt < this.#interval) return;
    // A list out of turn (a throttled hidden tab, or an idle page): the grid restarts from it, so the next
    // tick is one full interval later rather than right behind it.
    this.#disarm();
    await this.#listNow();
  }

  /**
   * Hands the monitor a task this page learned about (created, retried, canceled): an unfinished one of the
   * page's type joins at once; a finished one that was monitored finishes. Returns true if the monitor took it.
   * What this changes is told to the page's other tabs.
   */
  watch(task) {
    if (!task || !this.#accepts(task)) return false;
    const known = this.#tasks.has(task.id);
    const took = this.#absorb(task);
    // Joined here, or ended here (a cancel answer): news for the other tabs. A resent answer is not.
    if (took && (!known || isFinished(task))) this.#tell(task.id, task.type, task.status);
    this.#settleClock();
    return took;
  }

  /** Stops monitoring one task without a callback (the page removed it itself). */
  forget(id) {
    this.#tasks.delete(id);
    this.#done.add(id);
    this.#settleClock();
  }

  /** The page deleted this task (or found it gone): forgets it, and the page's other tabs drop it too. */
  deleted(id) {
    const type = this.#tasks.get(id)?.task.type ?? this.#type;
    this.forget(id);
    this.#tell(id, type, "deleted");
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

  #drop(id) {
    const entry = this.#tasks.get(id);
    this.#tasks.delete(id);
    this.#done.add(id);
    this.#byId.get(id)?.controller?.abort();
    this.#byId.delete(id);
    this.#call("onGone", id, entry?.task);
  }

  #call(name, ...args) {
    try {
      this.#on[name](...args);
    } catch (error) {
      report(error);
    }
  }

  // ---- news between tabs

  #tell(id, type, status) {
    try {
      this.#channel?.postMessage({id, type: type ?? null, status});
    } catch (error) {
      report(error); // the other tabs will learn it at their next refresh or tick
    }
  }

  #heard(news) {
    if (!this.#running || typeof news?.id !== "string") return;
    if (news.type != null && this.#type != null && news.type !== this.#type) return; // another page's task
    if (news.status === "deleted") {
      this.#drop(news.id);
      this.#settleClock();
      return;
    }
    // Once finished, a task can only be deleted (a retry is a new task): nothing to fetch.
    if (this.#done.has(news.id)) return;
    this.#fetchOne(news.id, {told: true});
    this.#settleClock();
  }

  // ---- the clock

  // The clock runs while something is unfinished, a request is out, or the last one failed (the page cannot
  // know what is unfinished until a list is answered); otherwise it is not armed at all.
  #settleClock() {
    const needed = this.#running
      && (this.#tasks.size > 0 || this.#list !== null || this.#byId.size > 0 || this.#connection !== "ok");
    if (needed && this.#timer === null) {
      this.#nextAt = this.#clock.now() + this.#interval;
      this.#arm();
    } else if (!needed) {
      this.#disarm();
    }
  }

  #arm() {
    const delay = Math.max(0, this.#nextAt - this.#clock.now());
    this.#timer = this.#clock.setTimeout(() => this.#tick(), delay);
  }

  #disarm() {
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
  }

  #tick() {
    this.#timer = null;
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

  // ---- requests

  // A list now, with the clock armed from it while it is out.
  async #listNow() {
    const listing = this.#startList();
    this.#settleClock();
    await listing;
  }

  async #startList() {
    const round = ++this.#round;
    const controller = typeof AbortController === "function" ? new AbortController() : null;
    const inFlight = {round, startedAt: this.#clock.now(), controller};
    this.#list = inFlight;
    this.#lastListAt = inFlight.startedAt;
    let items;
    try {
      items = await this.#listUnfinished(controller);
    } catch (error) {
      if (this.#list === inFlight) {
        this.#list = null;
        this.#setConnection("reconnecting");
        this.#settleClock();
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
    this.#settleClock();
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

  // One task by id: a monitored one that left the unfinished list, or one another tab told of (`told`).
  async #fetchOne(id, {told = false} = {}) {
    if (this.#byId.has(id)) return;
    const controller = typeof AbortController === "function" ? new AbortController() : null;
    const inFlight = {startedAt: this.#clock.now(), controller};
    this.#byId.set(id, inFlight);
    try {
      const task = await this.#getJson(`/api/tasks/${encodeURIComponent(id)}`, controller);
      if (this.#byId.get(id) !== inFlight || !this.#running) return;
      this.#byId.delete(id);
      this.#setConnection("ok");
      if (!this.#accepts(task)) return;
      if (told && isFinished(task) && !this.#tasks.has(id) && !this.#done.has(id)) {
        // Started and ended in another tab before this one heard: it still belongs in this page's history.
        this.#done.add(id);
        this.#call("onFinish", task);
      } else {
        this.#absorb(task);
      }
    } catch (error) {
      if (this.#byId.get(id) !== inFlight || !this.#running) return;
      this.#byId.delete(id);
      if (error instanceof HttpError && error.status === 404) {
        this.#setConnection("ok");
        if (this.#tasks.has(id) || told) this.#drop(id);
      } else {
        // A monitored task is tried again at the next tick: it will still be missing from the list; one told
        // of is in that list if it is still unfinished.
        this.#setConnection("reconnecting");
      }
    } finally {
      this.#settleClock();
    }
  }

  async #getJson(path, controller) {
    const sentAt = this.#clock.now();
    const response = await this.#fetch(this.#base + path, {
      method: "GET",
      headers: {Accept: "application/json"},
      cache: "no-store",
      credentials: this.#credentials,
      signal: controller?.signal,
    });
    if (!response.ok) throw new HttpError(response.status);
    const told = Number.parseInt(response.headers?.get?.(SERVER_CLOCK_HEADER) ?? "", 10);
    if (Number.isFinite(told)) this.#clockOffset = told - (sentAt + this.#clock.now()) / 2;
    return response.json();
  }

  #setConnection(state) {
    if (state === this.#connection) return;
    this.#connection = state;
    this.#call("onConnection", state);
  }
}
