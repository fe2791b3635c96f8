// The upload queue against a fake clock, a fake API and a fake IndexedDB: run with `node --test tests/js/`.
import assert from "node:assert/strict";
import {beforeEach, describe, test} from "node:test";

import {UploadQueue, retryAfterMs} from "../../src/genkeep/web/static/uploads.js";
import {FakeClock, settle} from "./fake-clock.mjs";


// IndexedDB as the queue sees it: records survive a "reload" (a new queue over the same store).
class FakeStore {
  constructor() {
    this.records = new Map();
  }

  async getAll() {
    return [...this.records.values()].map((record) => ({...record}));
  }

  async get(key) {
    const record = this.records.get(key);
    return record ? {...record} : undefined;
  }

  async put(record) {
    this.records.set(record.key, {...record});
  }

  async delete(key) {
    this.records.delete(key);
  }
}

// Web Locks for tabs of one browser: a held name is refused to everyone else until released.
class FakeLocks {
  constructor() {
    this.held = new Set();
    this.lock = this.lock.bind(this);
  }

  async lock(name, fn) {
    if (this.held.has(name)) return false;
    this.held.add(name);
    try {
      await fn();
    } finally {
      this.held.delete(name);
    }
    return true;
  }
}

// The API's POST /api/tasks: one task per Idempotency-Key (the same key again answers the same task). `answer`
// decides each request's fate; `delay` keeps requests in flight for a while (fake time).
class FakeApi {
  constructor(clock) {
    this.clock = clock;
    this.requests = [];
    this.tasks = new Map(); // key -> task
    this.delay = 0;
    this.inFlight = 0;
    this.maxInFlight = 0;
    this.answer = () => null; // null: create (or repeat) the task; else {status, body, headers} or "network"
    this.fetch = this.fetch.bind(this);
  }

  fetch(url, init) {
    const key = init.headers["Idempotency-Key"];
    const files = init.body.getAll("reference_images");
    const request = {at: this.clock.now(), url, key, batch: init.body.get("batch"), type: init.body.get("type"),
      prompt: init.body.get("prompt"), names: files.map((file) => file.name), headers: init.headers};
    this.requests.push(request);
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const fate = this.answer(request);
    return new Promise((resolve, reject) => {
      const reply = () => {
        this.inFlight -= 1;
        if (fate === "network") return reject(new TypeError("Failed to fetch"));
        if (fate) return resolve(response(fate.status, fate.body, fate.headers));
        const known = this.tasks.get(key);
        const task = known ?? {id: `task-${this.tasks.size + 1}`, status: "pending", batch: request.batch};
        this.tasks.set(key, task);
        resolve(response(known ? 200 : 201, task));
      };
      if (this.delay > 0) this.clock.setTimeout(reply, this.delay);
      else reply();
    });
  }
}

const response = (status, body, headers = {}) => ({
  ok: status >= 200 && status < 300,
  status,
  headers: new Headers(headers),
  json: async () => body,
});

const photo = (name, size = 1000) => new File([new Uint8Array(size)], name, {type: "image/png"});

let keys = 0;

function makeQueue(clock, api, store, extra = {}) {
  const events = {created: [], refused: [], changes: 0};
  const queue = new UploadQueue({
    store, clock, fetch: api.fetch, openChannel: null, random: () => 1, newKey: () => `key-${++keys}`,
    lock: new FakeLocks().lock,
    onCreated: (task, record) => events.created.push({task, record}),
    onRefused: (record) => events.refused.push(record),
    onChange: () => {
      events.changes += 1;
    },
    ...extra,
  });
  return {queue, events};
}

const photos = (count, batch = "b1") => Array.from({length: count}, (_, index) => ({
  batch, type: "WHITE_BACKGROUND", prompt: "", files: [photo(`shoe-${String(index + 1).padStart(2, "0")}.png`)],
}));

describe("UploadQueue", () => {
  let clock;
  let api;
  let store;

  beforeEach(() => {
    clock = new FakeClock();
    api = new FakeApi(clock);
    store = new FakeStore();
  });

  test("sends each photo as its own task, with its own key, its batch and its file name", async () => {
    const {queue, events} = makeQueue(clock, api, store);
    await queue.start();
    await queue.add(photos(4));
    await clock.advance(0);

    assert.equal(api.requests.length, 4);
    assert.equal(new Set(api.requests.map((r) => r.key)).size, 4);
    assert.deepEqual(api.requests.map((r) => r.batch), ["b1", "b1", "b1", "b1"]);
    assert.deepEqual(api.requests.map((r) => r.names[0]), ["shoe-01.png", "shoe-02.png", "shoe-03.png", "shoe-04.png"]);
    assert.equal(api.requests[0].type, "WHITE_BACKGROUND");
    assert.equal(events.created.length, 4);
    assert.deepEqual(queue.progress("b1"), {total: 4, sent: 4, refused: 0, queued: 0, sending: 0, bytes: 4000,
      bytesSent: 4000, waitingUntil: null});
    // Sent photos keep no bytes in the store: only their tally.
    for (const record of store.records.values()) assert.deepEqual(record.files, []);
  });

  test("sends at most three at a time, and the rest as each one ends", async () => {
    api.delay = 500;
    const {queue} = makeQueue(clock, api, store);
    await queue.start();
    await queue.add(photos(10));
    await clock.advance(0);
    assert.equal(api.requests.length, 3);
    assert.equal(queue.progress("b1").sending, 3);
    await clock.advance(500);
    assert.equal(api.requests.length, 6);
    await clock.advance(2000);
    assert.equal(api.requests.length, 10);
    assert.equal(api.maxInFlight, 3);
    assert.equal(queue.progress("b1").sent, 10);
  });

  test("a network error is retried with the same key after a backoff, and creates one task", async () => {
    let failing = 2;
    api.answer = () => (failing-- > 0 ? "network" : null);
    const {queue, events} = makeQueue(clock, api, store, {concurrency: 1});
    await queue.start();
    await queue.add(photos(1));
    await clock.advance(0);
    assert.equal(api.requests.length, 1);
    await clock.advance(999);
    assert.equal(api.requests.length, 1, "no retry before the first backoff (1 s)");
    await clock.advance(1);
    assert.equal(api.requests.length, 2);
    await clock.advance(1999);
    assert.equal(api.requests.length, 2, "the second backoff is twice as long");
    await clock.advance(1);
    assert.equal(api.requests.length, 3);
    assert.equal(new Set(api.requests.map((r) => r.key)).size, 1);
    assert.equal(api.tasks.size, 1);
    assert.equal(events.created.length, 1);
  });

  test("5xx and 408 are retried; the backoff stops growing at its ceiling", async () => {
    api.answer = () => (api.requests.length <= 8 ? {status: api.requests.length % 2 ? 503 : 408, body: {}} : null);
    const {queue} = makeQueue(clock, api, store, {concurrency: 1, maxDelayMs: 4000});
    await queue.start();
    await queue.add(photos(1));
    await clock.advance(60000);
    assert.equal(api.requests.length, 9);
    const gaps = api.requests.slice(1).map((r, i) => r.at - api.requests[i].at);
    assert.deepEqual(gaps, [1000, 2000, 4000, 4000, 4000, 4000, 4000, 4000]);
    assert.equal(queue.progress("b1").sent, 1);
  });

  test("429 pauses the whole queue for Retry-After, then the same photos go with the same keys", async () => {
    let limited = true;
    api.answer = () => (limited ? {status: 429, body: {code: "too_many_waiting"}, headers: {"Retry-After": "30"}}
      : null);
    const {queue} = makeQueue(clock, api, store);
    await queue.start();
    await queue.add(photos(5));
    await clock.advance(0);
    assert.equal(api.requests.length, 3, "the first three went out together");
    limited = false;
    await clock.advance(29999);
    assert.equal(api.requests.length, 3, "nothing is sent before Retry-After");
    assert.equal(queue.progress("b1").waitingUntil, 30000);
    await clock.advance(1);
    await clock.advance(0);
    assert.equal(api.requests.length, 8);
    const firstKeys = api.requests.slice(0, 3).map((r) => r.key);
    for (const key of firstKeys) assert.ok(api.requests.slice(3).some((r) => r.key === key));
    assert.equal(api.tasks.size, 5);
    assert.equal(queue.progress("b1").sent, 5);
  });

  test("Retry-After may be an HTTP date", () => {
    const now = Date.parse("2025-01-01T12:00:00Z");
    assert.equal(retryAfterMs("Wed, 01 Jan 2025 12:00:20 GMT", now), 20000);
    assert.equal(retryAfterMs("7", now), 7000);
    assert.equal(retryAfterMs(null, now), null);
  });

  test("another 4xx is a verdict on that photo: shown with the server's words, never sent again", async () => {
    api.answer = (request) => (request.names[0] === "shoe-02.png"
      ? {status: 422, body: {code: "not_an_image", detail: "shoe-02.png is not an image."}} : null);
    const {queue, events} = makeQueue(clock, api, store);
    await queue.start();
    await queue.add(photos(3));
    await clock.advance(60000);
    assert.equal(api.requests.length, 3);
    assert.equal(events.refused.length, 1);
    assert.equal(events.refused[0].detail, "shoe-02.png is not an image.");
    assert.equal(events.refused[0].name, "shoe-02.png");
    const tally = queue.progress("b1");
    assert.equal(tally.sent, 2);
    assert.equal(tally.refused, 1);
    assert.equal(tally.queued, 0);
    const refused = queue.items("b1").find((record) => record.state === "refused");
    assert.equal(refused.detail, "shoe-02.png is not an image.");
  });

  test("a reload resumes what was not sent, with the same keys, and nothing is created twice", async () => {
    api.delay = 1000;
    const first = makeQueue(clock, api, store);
    await first.queue.start();
    await first.queue.add(photos(5));
    await clock.advance(1000); // three answered; the next two are out when the page goes away
    assert.equal(api.requests.length, 5);
    first.queue.stop();
    api.delay = 0;

    const second = makeQueue(clock, api, store);
    await second.queue.start();
    assert.equal(second.queue.progress("b1").total, 5, "the reloaded page knows the whole batch");
    await clock.advance(0);
    // The two out at the reload are sent again with their keys; the server answers with their tasks.
    const resent = api.requests.slice(5).map((r) => r.key);
    assert.deepEqual(resent, api.requests.slice(3, 5).map((r) => r.key));
    await clock.advance(1000); // the first page's two answers arrive too, late: harmless
    assert.equal(api.tasks.size, 5);
    assert.deepEqual(second.queue.progress("b1"), {total: 5, sent: 5, refused: 0, queued: 0, sending: 0,
      bytes: 5000, bytesSent: 5000, waitingUntil: null});
  });

  test("two tabs share the queue: each photo is sent once", async () => {
    const locks = new FakeLocks();
    api.delay = 300;
    const a = makeQueue(clock, api, store, {lock: locks.lock});
    const b = makeQueue(clock, api, store, {lock: locks.lock});
    await a.queue.start();
    await a.queue.add(photos(6));
    await b.queue.start(); // the second tab opens while the first is sending
    await clock.advance(10000);
    await b.queue.reload();
    await clock.advance(10000);
    assert.equal(api.tasks.size, 6);
    assert.equal(api.requests.length, 6, "no photo was sent by both tabs");
    assert.equal(b.queue.progress("b1").sent, 6);
  });

  test("progress counts bytes of the photos sent, per batch", async () => {
    api.delay = 100;
    const {queue} = makeQueue(clock, api, store, {concurrency: 2});
    await queue.start();
    await queue.add([...photos(3, "a"), {batch: "b", type: "WHITE_BACKGROUND", files: [photo("big.png", 5000)]}]);
    await clock.advance(100);
    assert.deepEqual(queue.batches(), ["a", "b"]);
    const a = queue.progress("a");
    assert.equal(a.total, 3);
    assert.equal(a.sent, 2);
    assert.equal(a.bytesSent, 2000);
    assert.equal(a.bytes, 3000);
    assert.equal(queue.progress("b").bytes, 5000);
  });

  test("canceling a batch stops what was not sent", async () => {
    api.delay = 500;
    const {queue} = makeQueue(clock, api, store, {concurrency: 1});
    await queue.start();
    await queue.add(photos(4));
    await clock.advance(0);
    await queue.cancel("b1");
    await clock.advance(5000);
    assert.equal(api.requests.length, 1);
    assert.equal(api.tasks.size, 1);
    assert.equal(store.records.size, 1, "only the photo out at the cancel is still told of");
  });

  test("sends the page's Accept-Language, so a refusal comes in the seller's words", async () => {
    const {queue} = makeQueue(clock, api, store, {headers: {"Accept-Language": "zh-CN"}});
    await queue.start();
    await queue.add(photos(1));
    await clock.advance(0);
    assert.equal(api.requests[0].headers["Accept-Language"], "zh-CN");
    assert.equal(api.requests[0].headers["Idempotency-Key"], "key-" + keys);
  });
});
