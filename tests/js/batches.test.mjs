// Batches: the tally a batch card shows, the one listing per batch, and what a running batch costs in requests
// with the recovery client polling. Run with `node --test tests/js/`.
import assert from "node:assert/strict";
import {describe, test} from "node:test";

import {BatchBook, batchSummary, newBatchId, zipUrl} from "../../src/genkeep/web/static/batches.js";
import {TaskMonitor} from "../../src/genkeep/web/static/recovery.js";
import {FakeClock} from "./fake-clock.mjs";

const base = Date.UTC(2025, 0, 1, 12, 0, 0);
const iso = (ms) => new Date(ms).toISOString();

function task(n, status, fields = {}) {
  return {id: `t${n}`, type: "WHITE_BACKGROUND", status, batch: "b1", attempts: status === "processing" ? 1 : 0,
    created_at: iso(base + n * 1000), updated_at: iso(base + n * 1000 + 500),
    finished_at: status === "completed" || status === "failed" ? iso(base + 60000 + n) : null, ...fields};
}

const json = (status, body) => ({ok: status >= 200 && status < 300, status, headers: new Headers(),
  json: async () => body});

describe("batchSummary", () => {
  test("counts done, failed, waiting (pending) and running (processing), and every photo", () => {
    const tasks = [task(1, "completed"), task(2, "failed"), task(3, "pending"), task(4, "pending"),
      task(5, "processing")];
    const records = [
      {state: "done", taskId: "t1"}, {state: "done", taskId: "t9"}, // t9: sent, not heard of yet
      {state: "queued"}, {state: "refused", detail: "not an image"},
    ];
    const summary = batchSummary(tasks, records);
    assert.deepEqual({done: summary.done, failed: summary.failed, waiting: summary.waiting,
      running: summary.running, refused: summary.refused, unsent: summary.unsent, total: summary.total},
    {done: 1, failed: 1, waiting: 2, running: 1, refused: 1, unsent: 1, total: 8});
    assert.equal(summary.settled, false);
    assert.equal(summary.startedAt, base + 1000);
    assert.equal(summary.endedAt, null);
  });

  test("settles when nothing is left to send or to finish", () => {
    const summary = batchSummary([task(1, "completed"), task(2, "failed")], [{state: "refused"}]);
    assert.equal(summary.settled, true);
    assert.equal(summary.total, 3);
    assert.equal(summary.endedAt, base + 60002);
  });
});

describe("BatchBook", () => {
  test("a batch's listing is asked once, paged to the end, and tells the finished tasks", async () => {
    const all = Array.from({length: 230}, (_, i) => task(i + 1, i < 150 ? "completed" : "pending"));
    const requests = [];
    const fetch = async (url) => {
      const parsed = new URL(url, "http://genkeep.test");
      requests.push(parsed);
      const start = Number(parsed.searchParams.get("cursor") ?? 0);
      const items = all.slice(start, start + 100);
      return json(200, {items, next_cursor: start + 100 < all.length ? String(start + 100) : null});
    };
    const changed = new Set();
    const book = new BatchBook({fetch, type: "WHITE_BACKGROUND", onChange: (batch) => changed.add(batch)});
    await Promise.all([book.load("b1"), book.load("b1")]);
    await book.load("b1");
    assert.equal(requests.length, 3);
    assert.equal(requests[0].searchParams.get("batch"), "b1");
    assert.equal(requests[0].searchParams.get("limit"), "100");
    assert.equal(requests[0].searchParams.get("type"), "WHITE_BACKGROUND");
    assert.equal(book.tasks("b1").length, 230);
    const summary = batchSummary(book.tasks("b1"));
    assert.equal(summary.done, 150);
    assert.equal(summary.waiting, 80);
    assert.deepEqual([...changed], ["b1"]);
  });

  test("a late answer does not undo a newer view; a final status always wins", () => {
    const book = new BatchBook({fetch: async () => json(500, {})});
    book.see(task(1, "processing", {updated_at: iso(base + 9000)}));
    book.see(task(1, "pending", {updated_at: iso(base + 2000)}));
    assert.equal(book.tasks("b1")[0].status, "processing");
    book.see(task(1, "completed", {updated_at: iso(base + 1000)}));
    book.see(task(1, "processing", {updated_at: iso(base + 99000)}));
    assert.equal(book.tasks("b1")[0].status, "completed");
    assert.equal(book.see({...task(2, "pending"), batch: null}), null, "a task alone is no batch's");
    book.gone("t1");
    assert.equal(book.tasks("b1").length, 0);
  });

  test("a failed listing may be asked again", async () => {
    let fail = true;
    const fetch = async () => (fail ? json(503, {}) : json(200, {items: [task(1, "pending")], next_cursor: null}));
    const book = new BatchBook({fetch});
    await assert.rejects(book.load("b1"));
    fail = false;
    await book.load("b1");
    assert.equal(book.tasks("b1").length, 1);
  });

  test("a batch this page started needs no listing", async () => {
    const book = new BatchBook({fetch: async () => assert.fail("no request")});
    book.started("b1");
    await book.load("b1");
    assert.ok(book.has("b1"));
  });

  test("ids and ZIP links are what the API takes", () => {
    assert.match(newBatchId(), /^[A-Za-z0-9_-]{1,64}$/);
    assert.equal(zipUrl({batch: "b1"}), "/api/results.zip?batch=b1");
    assert.equal(zipUrl({ids: ["a", "b"]}), "/api/results.zip?id=a&id=b");
  });
});

// ---------------------------------------------------------------------------------------------------------
// What a running batch costs: the recovery client's one list per tick carries every unfinished task.


// A server running an owner's batch: `running` at a time, each for `runMs`; the rest wait in line (pending).
class BatchServer {
  constructor(clock, count, {running = 10, runMs = 20000} = {}) {
    this.clock = clock;
    this.running = running;
    this.runMs = runMs;
    this.requests = [];
    this.tasks = Array.from({length: count}, (_, i) => ({...task(i + 1, "pending"), startedAt: null,
      created_at: iso(base + i)}));
    this.fetch = this.fetch.bind(this);
  }

  advanceWork() {
    const now = this.clock.now();
    for (const one of this.tasks) {
      if (one.status === "processing" && now - one.startedAt >= this.runMs) {
        Object.assign(one, {status: "completed", updated_at: iso(now), finished_at: iso(now)});
      }
    }
    let busy = this.tasks.filter((one) => one.status === "processing").length;
    for (const one of this.tasks) {
      if (busy >= this.running) break;
      if (one.status !== "pending") continue;
      Object.assign(one, {status: "processing", attempts: 1, startedAt: now, updated_at: iso(now)});
      busy += 1;
    }
  }

  async fetch(url) {
    this.advanceWork();
    const parsed = new URL(url, "http://genkeep.test");
    this.requests.push({at: this.clock.now(), path: parsed.pathname});
    const view = ({startedAt, ...rest}) => ({...rest});
    const one = parsed.pathname.match(/^\/api\/tasks\/(.+)$/);
    if (one) return json(200, view(this.tasks.find((t) => t.id === one[1])));
    const statuses = parsed.searchParams.getAll("status");
    const matching = this.tasks.filter((t) => !statuses.length || statuses.includes(t.status)).reverse();
    const start = Number(parsed.searchParams.get("cursor") ?? 0);
    const limit = Number(parsed.searchParams.get("limit") ?? 100);
    const next = start + limit < matching.length ? String(start + limit) : null;
    return json(200, {items: matching.slice(start, start + limit).map(view), next_cursor: next});
  }
}

describe("a running batch, polled by the recovery client", () => {
  test("a 40-photo batch costs one list per 2 s tick plus one fetch per finished task", async () => {
    const clock = new FakeClock(base);
    const server = new BatchServer(clock, 40);
    const book = new BatchBook({fetch: server.fetch});
    const monitor = new TaskMonitor({type: "WHITE_BACKGROUND", clock, fetch: server.fetch, openChannel: null,
      onTask: (one) => book.see(one), onFinish: (one) => book.see(one)});
    await monitor.start();
    await clock.advance(60000);
    const firstMinute = server.requests.filter((r) => r.at < base + 60000);
    const lists = firstMinute.filter((r) => r.path === "/api/tasks").length;
    const finishedFetches = firstMinute.length - lists;
    assert.equal(lists, 30, "the start's list, then one per 2 s tick");
    assert.ok(finishedFetches <= 30, `one fetch per task that finished (${finishedFetches})`);
    await clock.advance(120000);
    assert.equal(monitor.tasks.length, 0);
    assert.equal(batchSummary(book.tasks("b1")).done, 40);
    assert.equal(monitor.ticking, false, "an idle page makes no request");
  });

  test("a batch of 200 waiting photos is tracked whole, paging the list", async () => {
    const clock = new FakeClock(base);
    const server = new BatchServer(clock, 200, {running: 0});
    const book = new BatchBook({fetch: server.fetch});
    const monitor = new TaskMonitor({type: "WHITE_BACKGROUND", clock, fetch: server.fetch, openChannel: null,
      onTask: (one) => book.see(one)});
    await monitor.start();
    assert.equal(monitor.tasks.length, 200);
    assert.equal(batchSummary(book.tasks("b1")).waiting, 200);
    const before = server.requests.length;
    await clock.advance(2000);
    assert.equal(server.requests.length - before, 2, "one tick: two pages of 100");
  });
});
