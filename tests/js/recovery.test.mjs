// The recovery client against a fake clock and a fake API: run with `node --test tests/js/`.
import assert from "node:assert/strict";
import {beforeEach, describe, test} from "node:test";

import {CHANNEL_NAME, SERVER_CLOCK_HEADER, TaskMonitor} from "../../src/genkeep/web/static/recovery.js";
import {FakeClock, settle} from "./fake-clock.mjs";

const INTERVAL = 2000;

// Time moves only when a test says so; every timer the monitor asks for is recorded.

const jsonResponse = (status, body) => ({
  ok: status >= 200 && status < 300,
  status,
  json: async () => body,
});

let sequence = 0;

function makeTask(fields = {}) {
  sequence += 1;
  const created = new Date(Date.UTC(2025, 0, 1, 12, 0, sequence)).toISOString();
  return {
    id: `t${sequence}`,
    type: "CREATE",
    status: "processing",
    prompt: `prompt ${sequence}`,
    reference_images: [],
    image_url: null,
    error: null,
    progress: null,
    created_at: created,
    updated_at: created,
    finished_at: null,
    ...fields,
  };
}

// A small stand-in for the API: answers the list and one-task requests from its own task table, and can be
// told to be slow, to fail, or to be unreachable. Every request is logged with the fake time it was sent at.
class FakeApi {
  constructor(clock) {
    this.clock = clock;
    this.tasks = new Map();
    this.requests = [];
    this.delay = 0;
    this.failWith = null; // null, "network" or an HTTP status
    this.pageSize = 100;
    this.clockOffset = null; // the server's clock minus the page's; null: answers tell no time
    this.fetch = this.fetch.bind(this);
  }

  add(task) {
    this.tasks.set(task.id, task);
    return task;
  }

  update(id, fields) {
    const stamp = new Date(Date.parse(this.tasks.get(id).updated_at) + 1000 + this.clock.now()).toISOString();
    const task = {...this.tasks.get(id), updated_at: stamp, ...fields};
    this.tasks.set(id, task);
    return task;
  }

  listRequests() {
    return this.requests.filter((r) => r.path === "/api/tasks");
  }

  oneRequests(id) {
    return this.requests.filter((r) => r.path === `/api/tasks/${id}`);
  }

  fetch(url, init = {}) {
    const parsed = new URL(url, "http://genkeep.test");
    this.requests.push({at: this.clock.now(), path: parsed.pathname, query: parsed.searchParams, init});
    // The answer reflects the state when the request arrived, like a real server reading its database.
    const failure = this.failWith;
    const answer = failure === null ? this.answer(parsed) : null;
    return new Promise((resolve, reject) => {
      const reply = () => {
        if (failure === "network") reject(new TypeError("Failed to fetch"));
        else if (failure !== null) resolve(jsonResponse(failure, {status: failure, code: "oops"}));
        else resolve(this.stamped(answer));
      };
      init.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
      if (this.delay > 0) this.clock.later(this.delay, reply);
      else reply();
    });
  }

  // The server tells its time as it sends the answer.
  stamped(answer) {
    if (this.clockOffset === null) return answer;
    const told = String(this.clock.now() + this.clockOffset);
    return {...answer, headers: new Headers({[SERVER_CLOCK_HEADER]: told})};
  }

  answer(url) {
    const match = url.pathname.match(/^\/api\/tasks\/([^/]+)$/);
    if (match) {
      const task = this.tasks.get(decodeURIComponent(match[1]));
      return task ? jsonResponse(200, task) : jsonResponse(404, {status: 404, code: "not_found"});
    }
    const type = url.searchParams.get("type");
    const statuses = url.searchParams.getAll("status");
    const all = [...this.tasks.values()]
      .filter((t) => (type ? t.type === type : true))
      .filter((t) => (statuses.length ? statuses.includes(t.status) : true))
      .sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
    const start = Number(url.searchParams.get("cursor") ?? 0);
    const items = all.slice(start, start + this.pageSize);
    const next = start + this.pageSize < all.length ? String(start + this.pageSize) : null;
    return jsonResponse(200, {items, next_cursor: next});
  }
}

// Stands in for BroadcastChannel: what one port posts reaches every other open port, later and as a copy, like
// the real one (never the poster itself).
class FakeBus {
  constructor() {
    this.ports = new Set();
    this.posted = [];
  }

  open() {
    const port = new FakePort(this);
    this.ports.add(port);
    return port;
  }
}

class FakePort {
  constructor(bus) {
    this.bus = bus;
    this.listeners = new Set();
    this.closed = false;
  }

  postMessage(data) {
    if (this.closed) throw new DOMException("closed", "InvalidStateError");
    this.bus.posted.push(data);
    for (const other of this.bus.ports) {
      if (other !== this) setImmediate(() => other.deliver(structuredClone(data)));
    }
  }

  addEventListener(type, fn) {
    if (type === "message") this.listeners.add(fn);
  }

  removeEventListener(type, fn) {
    if (type === "message") this.listeners.delete(fn);
  }

  close() {
    this.closed = true;
    this.bus.ports.delete(this);
  }

  deliver(data) {
    if (!this.closed) for (const fn of this.listeners) fn({data});
  }
}

// Records what the page would render from the callbacks.
function recorder() {
  const events = [];
  const cards = new Map();
  const hooks = {
    onTask: (task, previous) => {
      events.push({kind: previous ? "change" : "join", id: task.id, status: task.status});
      if (!previous && cards.has(task.id)) throw new Error(`second card for ${task.id}`);
      cards.set(task.id, task);
    },
    onFinish: (task) => {
      events.push({kind: "finish", id: task.id, status: task.status});
      cards.set(task.id, task);
    },
    onGone: (id) => {
      events.push({kind: "gone", id});
      cards.delete(id);
    },
    onConnection: (state) => events.push({kind: "connection", state}),
  };
  return {events, cards, hooks};
}

function setup(options = {}) {
  const clock = new FakeClock();
  const api = new FakeApi(clock);
  const bus = new FakeBus();
  const seen = recorder();
  const openChannel = () => bus.open();
  const make = (more = {}) =>
    new TaskMonitor({type: "CREATE", fetch: api.fetch, clock, openChannel, ...seen.hooks, ...options, ...more});
  // Another tab of the same browser: the same API, clock and channel, its own cards.
  const tab = (more = {}) => {
    const its = recorder();
    const monitor = new TaskMonitor({type: "CREATE", fetch: api.fetch, clock, openChannel, ...its.hooks, ...more});
    return {monitor, seen: its};
  };
  return {clock, api, bus, seen, make, tab, openChannel};
}

const listTimes = (api) => api.listRequests().map((r) => r.at);

describe("recovery on load", () => {
  test("lists the page type's unfinished tasks and shows each one", async () => {
    const {api, seen, make} = setup();
    const processing = api.add(makeTask({status: "processing"}));
    const pending = api.add(makeTask({status: "pending"}));
    api.add(makeTask({status: "completed", image_url: "/x.png"}));
    api.add(makeTask({type: "WHITE_BACKGROUND"}));
    const monitor = make();
    await monitor.start();

    const [first] = api.requests;
    assert.equal(first.path, "/api/tasks");
    assert.equal(first.query.get("type"), "CREATE");
    assert.deepEqual(first.query.getAll("status"), ["pending", "processing"]);
    assert.equal(first.at, 0, "the recovery list goes out at once, not after one interval");
    assert.deepEqual([...seen.cards.keys()].sort(), [processing.id, pending.id].sort());
    assert.deepEqual(monitor.tasks.map((t) => t.id), [pending.id, processing.id], "newest first");
    monitor.stop();
  });

  test("reports the oldest first, so cards put on top end up newest first", async () => {
    const {api, seen, make} = setup();
    const older = api.add(makeTask());
    const newer = api.add(makeTask());
    await make().start();
    assert.deepEqual(seen.events.filter((e) => e.kind === "join").map((e) => e.id), [older.id, newer.id]);
  });

  test("follows next_cursor until every unfinished task is found", async () => {
    const {api, seen, make} = setup();
    api.pageSize = 2;
    for (let i = 0; i < 5; i++) api.add(makeTask());
    await make().start();
    assert.equal(seen.cards.size, 5);
    assert.equal(api.listRequests().length, 3);
  });
});

describe("the server's clock", () => {
  test("before any answer tells the time, the page's own clock", async () => {
    const {clock, make} = setup();
    clock.time = 1_767_225_600_000;
    assert.equal(make().serverNow(), clock.now());
  });

  test("a page whose clock is ten minutes off counts from the server's clock the answers tell", async () => {
    const {clock, api, make} = setup();
    clock.time = 1_767_225_600_000;
    api.clockOffset = -600_000; // the browser's clock runs ten minutes ahead of the server's
    const task = api.add(makeTask({created_at: new Date(clock.now() - 600_000 - 3000).toISOString()}));
    const monitor = make();
    await monitor.start();
    assert.equal(monitor.serverNow() - Date.parse(task.created_at), 3000, "a 3-second-old task reads 3 s old");
    await clock.advance(INTERVAL);
    assert.equal(monitor.serverNow() - Date.parse(task.created_at), 5000);
    // Answers that take a while: the told time is taken as of the middle of the request.
    api.delay = 400;
    api.clockOffset = 300_000;
    await clock.advance(INTERVAL + api.delay);
    assert.ok(Math.abs(monitor.serverNow() - (clock.now() + 300_000)) <= api.delay / 2,
      `serverNow is ${monitor.serverNow() - clock.now()} ms from the page's clock, not 300000`);
    monitor.stop();
  });

  test("an answer without the time keeps the offset the last one told", async () => {
    const {clock, api, make} = setup();
    api.clockOffset = 42_000;
    api.add(makeTask());
    const monitor = make();
    await monitor.start();
    api.clockOffset = null;
    await clock.advance(INTERVAL);
    assert.equal(monitor.serverNow(), clock.now() + 42_000);
    monitor.stop();
  });
});

describe("only the page's type", () => {
  test("a task of another type is never shown, whether listed or watched", async () => {
    const {api, clock, seen, make} = setup();
    api.add(makeTask({type: "CLOTHING_CHANGE"}));
    // A server that ignores ?type= must still not put another type's task on this page.
    const original = api.answer.bind(api);
    api.answer = (url) => {
      url.searchParams.delete("type");
      return original(url);
    };
    const monitor = make();
    await monitor.start();
    assert.equal(monitor.watch(makeTask({type: "WHITE_BACKGROUND"})), false);
    await clock.advance(3 * INTERVAL);
    assert.equal(seen.cards.size, 0);
    assert.deepEqual(monitor.tasks, []);
    monitor.stop();
  });
});

describe("cadence", () => {
  test("one tick every 2,000 ms exactly, each re-listing the unfinished tasks", async () => {
    const {api, clock, make} = setup();
    api.add(makeTask());
    api.add(makeTask());
    const monitor = make();
    await monitor.start();
    await clock.advance(10 * INTERVAL);
    assert.deepEqual(listTimes(api), [0, 2000, 4000, 6000, 8000, 10000, 12000, 14000, 16000, 18000, 20000]);
    assert.ok(clock.scheduled.every((s) => s.delay === INTERVAL), "one timer, re-armed every interval");
    assert.equal(clock.timers.size, 1, "one clock for the page, however many tasks it watches");
    monitor.stop();
    assert.equal(clock.timers.size, 0);
  });

  test("the cadence is kept from the planned time, not from when responses arrive", async () => {
    const {api, clock, make} = setup();
    api.add(makeTask());
    api.delay = 700;
    const monitor = make();
    const started = monitor.start(); // resolves once the first (slow) answer is in
    await clock.advance(8 * INTERVAL);
    await started;
    assert.deepEqual(listTimes(api), [0, 2000, 4000, 6000, 8000, 10000, 12000, 14000, 16000]);
    monitor.stop();
  });

  test("a timer that fires late does not push the following ticks later", async () => {
    const {api, clock, make} = setup();
    api.add(makeTask());
    clock.lateBy = 40;
    const monitor = make();
    await monitor.start();
    await clock.advance(4 * INTERVAL + 100);
    assert.deepEqual(listTimes(api), [0, 2040, 4040, 6040, 8040]);
    assert.deepEqual(clock.scheduled.map((s) => s.delay), [2000, 1960, 1960, 1960, 1960]);
    monitor.stop();
  });

  test("after a stall the missed ticks are skipped, not replayed in a burst", async () => {
    const {api, clock, make} = setup();
    api.add(makeTask());
    const monitor = make();
    await monitor.start();
    clock.lateBy = 7000; // a laptop lid closed for 7 s
    await clock.advance(INTERVAL + 7000);
    clock.lateBy = 0;
    await clock.advance(3 * INTERVAL);
    const times = listTimes(api);
    assert.deepEqual(times, [0, 9000, 10000, 12000, 14000, 16000].filter((t) => t <= clock.now()));
    for (let i = 3; i < times.length; i++) assert.equal(times[i] - times[i - 1], INTERVAL);
    monitor.stop();
  });
});

describe("finishing", () => {
  test("completed: the final task is reported once and polling for it stops", async () => {
    const {api, clock, seen, make} = setup();
    const task = api.add(makeTask());
    const monitor = make();
    await monitor.start();
    await clock.advance(INTERVAL);
    api.update(task.id, {status: "completed", image_url: "/images/out.png", finished_at: "x", progress: 1});
    await clock.advance(INTERVAL);
    const finishes = seen.events.filter((e) => e.kind === "finish");
    assert.deepEqual(finishes, [{kind: "finish", id: task.id, status: "completed"}]);
    assert.equal(seen.cards.get(task.id).image_url, "/images/out.png");
    assert.deepEqual(monitor.tasks, []);
    const fetchedAt = api.oneRequests(task.id).map((r) => r.at);
    assert.deepEqual(fetchedAt, [4000], "fetched once by id when it left the unfinished list");
    await clock.advance(5 * INTERVAL);
    assert.equal(api.oneRequests(task.id).length, 1, "no request for a completed task");
    assert.equal(seen.events.filter((e) => e.id === task.id && e.kind !== "join").length, 1);
    monitor.stop();
  });

  test("a final status wins even if its updated_at looks older (another machine's clock)", async () => {
    const {api, clock, seen, make} = setup();
    const task = api.add(makeTask());
    const monitor = make();
    await monitor.start();
    await clock.advance(INTERVAL);
    const earlier = new Date(Date.parse(task.updated_at) - 60000).toISOString();
    api.update(task.id, {status: "completed", image_url: "/images/out.png", progress: 1});
    api.tasks.set(task.id, {...api.tasks.get(task.id), updated_at: earlier});
    await clock.advance(INTERVAL);
    const finishes = seen.events.filter((e) => e.kind === "finish");
    assert.deepEqual(finishes, [{kind: "finish", id: task.id, status: "completed"}]);
    await clock.advance(3 * INTERVAL);
    assert.equal(api.oneRequests(task.id).length, 1, "no request for it once it finished");
    monitor.stop();
  });

  test("failed: the error reaches the page and polling for it stops", async () => {
    const {api, clock, seen, make} = setup();
    const task = api.add(makeTask());
    const monitor = make();
    await monitor.start();
    api.update(task.id, {status: "failed", error: {code: "engine_error", message: "The engine broke."}});
    await clock.advance(INTERVAL);
    assert.equal(seen.cards.get(task.id).status, "failed");
    assert.equal(seen.cards.get(task.id).error.message, "The engine broke.");
    await clock.advance(5 * INTERVAL);
    assert.equal(api.oneRequests(task.id).length, 1);
    assert.deepEqual(monitor.tasks, []);
    monitor.stop();
  });

  test("a finished task handed over by the page (a cancel answer) finishes at once", async () => {
    const {api, seen, make} = setup();
    const task = api.add(makeTask());
    const monitor = make();
    await monitor.start();
    const canceled = api.update(task.id, {status: "failed", error: {code: "canceled", message: "Canceled."}});
    assert.equal(monitor.watch(canceled), true);
    assert.equal(seen.cards.get(task.id).status, "failed");
    assert.deepEqual(monitor.tasks, []);
    monitor.stop();
  });

  test("a stale list answer that still shows a finished task does not bring it back", async () => {
    const {api, clock, seen, make} = setup();
    const task = api.add(makeTask());
    const monitor = make();
    await monitor.start();
    api.delay = 1500; // the list sent at 2000 answers at 3500, with the task still processing
    await clock.advance(INTERVAL + 100);
    const canceled = api.update(task.id, {status: "failed", error: {code: "canceled", message: "Canceled."}});
    monitor.watch(canceled);
    await clock.advance(2000);
    assert.deepEqual(monitor.tasks, []);
    assert.equal(seen.cards.get(task.id).status, "failed");
    assert.equal(seen.events.filter((e) => e.kind === "join").length, 1);
    monitor.stop();
  });

  test("progress changes are reported with the previous state", async () => {
    const {api, clock, seen, make} = setup();
    const task = api.add(makeTask({progress: 0.1}));
    const monitor = make();
    await monitor.start();
    api.update(task.id, {progress: 0.6});
    await clock.advance(INTERVAL);
    assert.deepEqual(seen.events.filter((e) => e.kind === "change"), [
      {kind: "change", id: task.id, status: "processing"},
    ]);
    assert.equal(seen.cards.get(task.id).progress, 0.6);
    monitor.stop();
  });

  test("a task deleted elsewhere (404) is dropped with a callback", async () => {
    const {api, clock, seen, make} = setup();
    const task = api.add(makeTask());
    const monitor = make();
    await monitor.start();
    api.tasks.delete(task.id);
    await clock.advance(INTERVAL);
    assert.deepEqual(seen.events.at(-1), {kind: "gone", id: task.id});
    assert.deepEqual(monitor.tasks, []);
    await clock.advance(3 * INTERVAL);
    assert.equal(api.oneRequests(task.id).length, 1);
    monitor.stop();
  });
});

describe("no duplicate cards", () => {
  test("a task watched by the page and then listed is one card", async () => {
    const {api, clock, seen, make} = setup();
    const monitor = make();
    await monitor.start();
    const created = api.add(makeTask());
    assert.equal(monitor.watch(created), true);
    assert.equal(monitor.watch(created), true, "a double submit answered with the same task");
    await clock.advance(3 * INTERVAL);
    assert.equal(seen.events.filter((e) => e.kind === "join").length, 1);
    assert.equal(monitor.tasks.length, 1);
    monitor.stop();
  });

  test("a task listed on load and then watched is one card", async () => {
    const {api, seen, make} = setup();
    const task = api.add(makeTask());
    const monitor = make();
    await monitor.start();
    monitor.watch(task);
    assert.equal(seen.events.filter((e) => e.kind === "join").length, 1);
    monitor.stop();
  });

  test("a task watched while a list is out is not mistaken for a finished one", async () => {
    const {api, clock, make} = setup();
    const monitor = make();
    api.delay = 500;
    const started = monitor.start(); // the recovery list is out...
    const created = api.add(makeTask()); // ...when this tab creates a task the list cannot contain
    monitor.watch(created);
    await clock.advance(600);
    await started;
    assert.equal(api.oneRequests(created.id).length, 0);
    assert.equal(monitor.tasks.length, 1);
    monitor.stop();
  });
});

describe("a task started elsewhere", () => {
  test("appears within one interval while the page is monitoring another task", async () => {
    const {api, clock, seen, make} = setup();
    api.add(makeTask());
    const monitor = make();
    await monitor.start();
    await clock.advance(300);
    const elsewhere = api.add(makeTask());
    await clock.advance(INTERVAL - 300);
    assert.ok(seen.cards.has(elsewhere.id), "shown at the next tick");
    monitor.stop();
  });

  test("from another browser, on an idle page: appears at the next refresh", async () => {
    const {api, clock, seen, make} = setup();
    const monitor = make();
    await monitor.start();
    await clock.advance(60_000);
    const elsewhere = api.add(makeTask());
    await clock.advance(60_000);
    assert.equal(seen.cards.has(elsewhere.id), false, "an idle page asks nothing on its own");
    await monitor.refresh(); // the user comes back to the tab
    assert.ok(seen.cards.has(elsewhere.id));
    assert.equal(monitor.ticking, true);
    monitor.stop();
  });
});

describe("network trouble", () => {
  let ctx;
  beforeEach(() => {
    ctx = setup();
  });

  async function throughTrouble(failWith) {
    const {api, clock, seen, make} = ctx;
    const task = api.add(makeTask());
    const monitor = make();
    await monitor.start();
    api.failWith = failWith;
    await clock.advance(3 * INTERVAL);
    assert.equal(monitor.connection, "reconnecting");
    assert.deepEqual(monitor.tasks.map((t) => t.id), [task.id], "still monitored");
    api.failWith = null;
    api.update(task.id, {status: "completed", image_url: "/done.png"});
    await clock.advance(INTERVAL);
    assert.equal(monitor.connection, "ok");
    assert.equal(seen.cards.get(task.id).status, "completed");
    assert.deepEqual(listTimes(api), [0, 2000, 4000, 6000, 8000], "the cadence held throughout");
    assert.deepEqual(
      seen.events.filter((e) => e.kind === "connection").map((e) => e.state),
      ["reconnecting", "ok"],
    );
    monitor.stop();
  }

  test("rejected requests (the server is down): reconnecting, then ok", () => throughTrouble("network"));
  test("500 answers: reconnecting, then ok", () => throughTrouble(500));
  test("503 answers: reconnecting, then ok", () => throughTrouble(503));

  test("a failed recovery list is tried again at the next tick", async () => {
    const {api, clock, seen, make} = ctx;
    const task = api.add(makeTask());
    api.failWith = "network";
    const monitor = make();
    await monitor.start();
    assert.equal(monitor.connection, "reconnecting");
    api.failWith = null;
    await clock.advance(INTERVAL);
    assert.ok(seen.cards.has(task.id));
    assert.equal(monitor.connection, "ok");
    monitor.stop();
  });

  test("a slow answer that outlasts an interval: no overlapping request, reconnecting, then ok", async () => {
    const {api, clock, make} = ctx;
    api.add(makeTask());
    const monitor = make();
    await monitor.start();
    api.delay = 3000; // the list sent at 2000 answers at 5000
    await clock.advance(INTERVAL);
    api.delay = 0;
    await clock.advance(INTERVAL); // tick at 4000: the previous list is still out
    assert.deepEqual(listTimes(api), [0, 2000], "no second request while the first is out");
    assert.equal(monitor.connection, "reconnecting");
    await clock.advance(1000); // the slow answer arrives at 5000
    assert.equal(monitor.connection, "ok");
    await clock.advance(1000);
    assert.deepEqual(listTimes(api), [0, 2000, 6000], "back on the 2 s grid");
    monitor.stop();
  });

  test("a slow final fetch is not repeated while it is out", async () => {
    const {api, clock, seen, make, openChannel} = ctx;
    const task = api.add(makeTask());
    const monitor = make();
    await monitor.start();
    api.update(task.id, {status: "completed", image_url: "/done.png"});
    const original = api.fetch;
    api.fetch = (url, init) => {
      api.delay = url.includes(`/api/tasks/${task.id}`) ? 5000 : 0;
      return original(url, init);
    };
    monitor.stop();
    const slow = new TaskMonitor({type: "CREATE", fetch: api.fetch, clock, openChannel, ...seen.hooks});
    seen.cards.clear();
    api.update(task.id, {status: "processing"});
    await slow.start();
    api.update(task.id, {status: "completed", image_url: "/done.png"});
    await clock.advance(3 * INTERVAL);
    assert.equal(api.oneRequests(task.id).length, 1, "one fetch for the task, still out");
    await clock.advance(2 * INTERVAL);
    assert.equal(seen.cards.get(task.id).status, "completed");
    slow.stop();
  });

  test("a request that hangs is abandoned after requestTimeoutMs and monitoring goes on", async () => {
    const {api, clock, make} = ctx;
    const task = api.add(makeTask());
    const monitor = make({requestTimeoutMs: 6000});
    await monitor.start();
    api.delay = 60_000; // never answers in this test
    await clock.advance(INTERVAL);
    api.delay = 0;
    await clock.advance(3 * INTERVAL);
    assert.deepEqual(listTimes(api), [0, 2000, 8000], "abandoned at 8000 and a fresh list sent");
    assert.equal(monitor.connection, "ok");
    assert.deepEqual(monitor.tasks.map((t) => t.id), [task.id]);
    monitor.stop();
  });

  test("a callback that throws does not stop the monitor", async () => {
    const {api, clock, openChannel} = ctx;
    api.add(makeTask());
    const errors = [];
    const saved = globalThis.reportError;
    globalThis.reportError = (error) => errors.push(error);
    try {
      const monitor = new TaskMonitor({
        type: "CREATE", fetch: api.fetch, clock, openChannel, onTask: () => {
          throw new Error("render bug");
        },
      });
      await monitor.start();
      await clock.advance(2 * INTERVAL);
      assert.equal(errors.length, 1);
      assert.deepEqual(listTimes(api), [0, 2000, 4000]);
      monitor.stop();
    } finally {
      globalThis.reportError = saved;
    }
  });
});

describe("stop", () => {
  test("no request and no callback after stop", async () => {
    const {api, clock, seen, make} = setup();
    api.add(makeTask());
    const monitor = make();
    await monitor.start();
    monitor.stop();
    const count = api.requests.length;
    const events = seen.events.length;
    api.add(makeTask());
    await clock.advance(5 * INTERVAL);
    assert.equal(api.requests.length, count);
    assert.equal(seen.events.length, events);
  });
});

describe("idle pages cost nothing", () => {
  test("with nothing unfinished, no timer is armed and no request is made, however long the page stays", async () => {
    const {api, clock, make} = setup();
    api.add(makeTask({status: "completed", image_url: "/x.png"}));
    const monitor = make();
    await monitor.start();
    await clock.advance(10 * 60_000);
    assert.equal(api.requests.length, 1, "the recovery list, and nothing after it");
    assert.equal(clock.timers.size, 0);
    assert.equal(monitor.ticking, false);
    monitor.stop();
  });

  test("polling stops once the last task finishes, and resumes on the 2 s grid when a new one joins", async () => {
    const {api, clock, make} = setup();
    const task = api.add(makeTask());
    const monitor = make();
    await monitor.start();
    await clock.advance(INTERVAL);
    api.update(task.id, {status: "completed", image_url: "/done.png"});
    await clock.advance(INTERVAL); // the list at 4000 misses it; one fetch by id ends it
    assert.equal(monitor.ticking, false);
    const before = api.requests.length;
    await clock.advance(5 * 60_000);
    assert.equal(api.requests.length, before, "not one request while idle");

    const joinedAt = clock.now();
    monitor.watch(api.add(makeTask())); // this page starts a generation
    await clock.advance(3 * INTERVAL);
    assert.deepEqual(listTimes(api).filter((t) => t > joinedAt).map((t) => t - joinedAt), [2000, 4000, 6000]);
    monitor.stop();
  });

  test("a failed recovery list keeps the clock going until an answer says nothing is unfinished", async () => {
    const {api, clock, seen, make} = setup();
    api.failWith = 503;
    const monitor = make();
    await monitor.start();
    await clock.advance(2 * INTERVAL);
    assert.equal(monitor.connection, "reconnecting");
    api.failWith = null;
    await clock.advance(INTERVAL);
    assert.equal(monitor.connection, "ok");
    assert.deepEqual(listTimes(api), [0, 2000, 4000, 6000]);
    assert.deepEqual(seen.events.filter((e) => e.kind === "connection").map((e) => e.state), ["reconnecting", "ok"]);
    await clock.advance(60_000);
    assert.equal(api.requests.length, 4);
    assert.equal(monitor.ticking, false);
    monitor.stop();
  });
});

describe("news from other tabs of this browser", () => {
  test("a task started in another tab joins at once and is polled every 2 s from then on", async () => {
    const {api, clock, seen, make, tab} = setup();
    const monitor = make();
    const other = tab();
    await monitor.start();
    await other.monitor.start();
    await clock.advance(30_000);
    const created = api.add(makeTask());
    other.monitor.watch(created); // the other tab's form answered with the new task
    await clock.advance(0);
    assert.ok(seen.cards.has(created.id), "shown here at once");
    assert.deepEqual(api.oneRequests(created.id).map((r) => r.at), [30_000], "fetched once by id");
    await clock.advance(3 * INTERVAL);
    const ownLists = listTimes(api).filter((t) => t > 30_000);
    // Both tabs now poll on their own 2 s grid, both armed when the task joined.
    assert.deepEqual(ownLists, [32_000, 32_000, 34_000, 34_000, 36_000, 36_000]);
    monitor.stop();
    other.monitor.stop();
  });

  test("a cancel in another tab ends the card here at once, and both tabs go idle", async () => {
    const {api, clock, seen, make, tab} = setup();
    const task = api.add(makeTask());
    const monitor = make();
    const other = tab();
    await monitor.start();
    await other.monitor.start();
    await clock.advance(500);
    const canceled = api.update(task.id, {status: "failed", error: {code: "canceled", message: "Canceled."}});
    other.monitor.watch(canceled); // the cancel button's answer
    await clock.advance(0);
    assert.equal(seen.cards.get(task.id).status, "failed");
    assert.deepEqual(seen.events.filter((e) => e.kind === "finish").map((e) => e.id), [task.id]);
    assert.equal(monitor.ticking, false);
    assert.equal(other.monitor.ticking, false);
    monitor.stop();
    other.monitor.stop();
  });

  test("a delete in another tab removes the card here without a request", async () => {
    const {api, clock, seen, make, tab} = setup();
    const monitor = make();
    const other = tab();
    await monitor.start();
    await other.monitor.start();
    const requests = api.requests.length;
    other.monitor.deleted("t-from-history");
    await clock.advance(0);
    assert.deepEqual(seen.events.at(-1), {kind: "gone", id: "t-from-history"});
    assert.equal(api.requests.length, requests);
    monitor.stop();
    other.monitor.stop();
  });

  test("a task that started and ended before this tab heard still reaches its history", async () => {
    const {api, clock, seen, make, tab} = setup();
    const monitor = make();
    const other = tab();
    await monitor.start();
    await other.monitor.start();
    const created = api.add(makeTask({status: "pending"}));
    other.monitor.watch(created);
    api.update(created.id, {status: "completed", image_url: "/fast.png"}); // a very fast engine
    await clock.advance(0);
    assert.deepEqual(seen.events, [{kind: "finish", id: created.id, status: "completed"}]);
    assert.equal(monitor.ticking, false);
    monitor.stop();
    other.monitor.stop();
  });

  test("only what this tab did is news: no echo, no resent answers, no finishes seen by polling", async () => {
    const {api, bus, clock, make, tab} = setup();
    const monitor = make();
    const other = tab();
    await monitor.start();
    await other.monitor.start();
    const created = api.add(makeTask());
    other.monitor.watch(created);
    other.monitor.watch(created); // a double submit answered with the same task
    await clock.advance(INTERVAL);
    api.update(created.id, {status: "completed", image_url: "/done.png"});
    await clock.advance(2 * INTERVAL);
    assert.equal(monitor.tasks.length + other.monitor.tasks.length, 0, "both saw it finish");
    assert.deepEqual(bus.posted, [{id: created.id, type: "CREATE", status: "processing"}]);
    monitor.stop();
    other.monitor.stop();
  });

  test("news of another page's type costs this page nothing", async () => {
    const {api, clock, seen, make, tab} = setup();
    const monitor = make();
    const other = tab({type: "WHITE_BACKGROUND"});
    await monitor.start();
    await other.monitor.start();
    const requests = api.requests.length;
    other.monitor.watch(api.add(makeTask({type: "WHITE_BACKGROUND"})));
    await clock.advance(0);
    assert.equal(api.requests.length, requests, "no fetch here for a task this page does not show");
    assert.deepEqual(seen.events, []);
    assert.equal(monitor.ticking, false);
    monitor.stop();
    other.monitor.stop();
  });

  test("a page that follows every type hears every type", async () => {
    const {api, clock, make, tab} = setup();
    const home = make({type: null});
    const other = tab({type: "CLOTHING_CHANGE"});
    await home.start();
    await other.monitor.start();
    const created = api.add(makeTask({type: "CLOTHING_CHANGE"}));
    other.monitor.watch(created);
    await clock.advance(0);
    assert.deepEqual(home.tasks.map((t) => t.id), [created.id]);
    home.stop();
    other.monitor.stop();
  });

  test("a stopped monitor closes its channel and hears nothing", async () => {
    const {api, bus, clock, seen, make, tab} = setup();
    const monitor = make();
    const other = tab();
    await monitor.start();
    await other.monitor.start();
    monitor.stop();
    assert.equal(bus.ports.size, 1);
    other.monitor.watch(api.add(makeTask()));
    await clock.advance(INTERVAL);
    assert.deepEqual(seen.events, []);
    other.monitor.stop();
    assert.equal(bus.ports.size, 0);
  });

  test("the platform's BroadcastChannel carries the news between two monitors", async () => {
    const clock = new FakeClock();
    const api = new FakeApi(clock);
    const name = `${CHANNEL_NAME}.test.${process.pid}`;
    const openChannel = () => new BroadcastChannel(name);
    const here = recorder();
    const there = recorder();
    const monitor = new TaskMonitor({type: "CREATE", fetch: api.fetch, clock, openChannel, ...here.hooks});
    const other = new TaskMonitor({type: "CREATE", fetch: api.fetch, clock, openChannel, ...there.hooks});
    await monitor.start();
    await other.start();
    const created = api.add(makeTask());
    other.watch(created);
    const deadline = Date.now() + 5000; // real delivery, on Node's event loop
    while (!here.cards.has(created.id) && Date.now() < deadline) await settle();
    assert.ok(here.cards.has(created.id));
    monitor.stop();
    other.stop(); // closes the channels, or Node would never exit
  });
});

describe("coming back into view", () => {
  test("visible, focus and pageshow together make one list", async () => {
    const {api, clock, make} = setup();
    const monitor = make();
    await monitor.start();
    await clock.advance(60_000);
    await Promise.all([monitor.refresh(), monitor.refresh(), monitor.refresh()]);
    await clock.advance(100);
    await monitor.refresh(); // a focus that follows the visibility change a moment later
    assert.deepEqual(listTimes(api), [0, 60_000]);
    assert.equal(monitor.ticking, false, "still nothing unfinished: still idle");
    monitor.stop();
  });

  test("right after load, a refresh sends nothing more", async () => {
    const {api, make} = setup();
    const monitor = make();
    await monitor.start();
    await monitor.refresh();
    assert.equal(api.requests.length, 1);
    monitor.stop();
  });

  test("while ticking on time, a refresh adds no request and leaves the cadence alone", async () => {
    const {api, clock, make} = setup();
    api.add(makeTask());
    const monitor = make();
    await monitor.start();
    await clock.advance(INTERVAL + 500);
    await monitor.refresh();
    await clock.advance(2 * INTERVAL);
    assert.deepEqual(listTimes(api), [0, 2000, 4000, 6000]);
    monitor.stop();
  });

  test("after a hidden tab's throttled timer, a refresh lists at once and the grid restarts from it", async () => {
    const {api, clock, make} = setup();
    api.add(makeTask());
    const monitor = make();
    await monitor.start();
    clock.lateBy = 60_000; // a browser holding back a long-hidden tab's timers
    await clock.advance(30_000);
    assert.deepEqual(listTimes(api), [0]);
    clock.lateBy = 0;
    await monitor.refresh(); // shown again
    await clock.advance(2 * INTERVAL);
    assert.deepEqual(listTimes(api), [0, 30_000, 32_000, 34_000]);
    monitor.stop();
  });

  test("a refresh that fails shows reconnecting and keeps trying every 2 s", async () => {
    const {api, clock, make} = setup();
    const monitor = make();
    await monitor.start();
    await clock.advance(10_000);
    api.failWith = "network";
    await monitor.refresh();
    assert.equal(monitor.connection, "reconnecting");
    await clock.advance(INTERVAL);
    api.failWith = null;
    await clock.advance(INTERVAL);
    assert.deepEqual(listTimes(api), [0, 10_000, 12_000, 14_000]);
    assert.equal(monitor.connection, "ok");
    assert.equal(monitor.ticking, false);
    monitor.stop();
  });
});
