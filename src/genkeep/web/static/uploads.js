// The upload queue: many photos, each sent as its own task (POST /api/tasks) through a network that may fail.
//
// One ES module, no DOM: the page renders from the callbacks and from `progress(batch)` / `items(batch)`.
//
//   const queue = new UploadQueue({store: await openUploadStore(), onChange, onCreated, onRefused});
//   await queue.start();                      // resumes what an earlier page (or another tab) left unsent
//   await queue.add([{batch, type, prompt, files: [file]}, ...]);
//
// Why it is built this way:
// - Every photo is one request with its own Idempotency-Key, made when the photo is queued and kept with it: a
//   retry, a reload or a second tab sends the same key, and the server answers with the same task instead of a
//   second one. A photo can therefore be sent twice harmlessly, never created twice.
// - The queue is persisted (the Blob itself, its key, batch, type and prompt) in a store (IndexedDB in the
//   page): a refresh, a closed laptop or a crash loses nothing; the next page of that type resumes it.
// - Network errors, 408, 429 and 5xx are the moment's, not the photo's: the photo stays queued and the whole
//   queue pauses (Retry-After when the server gives one, else a growing backoff), so an outage costs one failed
//   request per pause, not one per photo. Another 4xx is a verdict on that photo (a bad file): it is kept, with
//   the server's `detail`, only to be shown, and never sent again.
// - A few uploads at a time (3 by default): enough to fill the pipe, few enough not to starve the page's polls.
// - Two tabs of one browser share the store: each photo is sent under an exclusive lock named after its key
//   (Web Locks in the page), and the record is read again inside the lock, so a photo another tab has just sent
//   is not sent again. Tabs tell each other through a channel that the store changed.

import {newIdempotencyKey} from "./api.js";
import {broadcastChannel, joinChannel, realClock, report} from "./recovery.js";

/** The BroadcastChannel name the pages' upload queues share news on. */
export const UPLOAD_CHANNEL = "genkeep.uploads";

// Settled records (sent or refused) stay this long, without their files, so a reload still shows the batch's
// upload tally and refused photos; then they are dropped at the next start.
const KEEP_SETTLED_MS = 24 * 3600 * 1000;

const openBroadcastChannel = () => broadcastChannel(UPLOAD_CHANNEL);

/** Runs `fn` holding the exclusive lock `name` if nobody holds it; resolves false (without running) if someone
 * does. Web Locks where the browser has them; elsewhere there is nothing to share with, so it just runs. */
async function webLock(name, fn) {
  const locks = globalThis.navigator?.locks;
  if (!locks?.request) {
    await fn();
    return true;
  }
  return locks.request(name, {ifAvailable: true}, async (lock) => {
    if (!lock) return false;
    await fn();
    return true;
  });
}

/** Seconds or an HTTP date, as Retry-After says; null if absent or unreadable. */
export function retryAfterMs(value, now) {
  if (value == null || value === "") return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

/** Whether an answer says "try again later" rather than "this photo is wrong". */
export const isTransient = (status) => status === 0 || status === 408 || status === 429 || status >= 500;

export class UploadQueue {
  #fetch;
  #clock;
  #store;
  #lock;
  #openChannel;
  #channel = null;
  #concurrency;
  #baseDelay;
  #maxDelay;
  #random;
  #url;
  #headers;
  #newKey;
  #on;

  #items = new Map(); // key -> record, as last read or written here
  #sending = new Set(); // keys being sent from this page
  #elsewhere = new Map(); // key -> time to look again: another tab holds its lock
  #failures = 0; // transient failures in a row, for the backoff
  #pausedUntil = 0;
  #timer = null;
  #timerAt = Infinity;
  #order = 0;
  #running = false;
  #hear = () => this.reload();

  /**
   * @param {object} options
   * @param {{getAll(): Promise<object[]>, get(key): Promise<object|undefined>, put(record): Promise<void>,
   *   delete(key): Promise<void>}} options.store where the queue is kept (see openUploadStore)
   * @param {Function} [options.fetch] defaults to the global fetch
   * @param {{now(): number, setTimeout(fn, ms): any, clearTimeout(handle): void}} [options.clock]
   * @param {(name: string, fn: () => Promise<void>) => Promise<boolean>} [options.lock] runs fn under an exclusive
   *   lock if it is free, else resolves false at once
   * @param {() => object|null} [options.openChannel] the channel other tabs' queues share (BroadcastChannel-like)
   * @param {number} [options.concurrency] uploads at a time (3)
   * @param {number} [options.baseDelayMs] the first backoff after a transient failure (1 s), doubling to
   * @param {number} [options.maxDelayMs] at most this (60 s)
   * @param {() => number} [options.random] in [0, 1): spreads the backoff so many tabs do not retry in step
   * @param {string} [options.url] where tasks are created
   * @param {object} [options.headers] more request headers (the page's Accept-Language: a refusal's words)
   * @param {() => string} [options.newKey] makes each photo's Idempotency-Key
   * @param {(batch: string) => void} [options.onChange] a batch's uploads changed (progress(batch) tells how)
   * @param {(task: object, record: object) => void} [options.onCreated] the server took a photo: its task
   * @param {(record: object) => void} [options.onRefused] the server refused a photo (record.detail says why)
   */
  constructor({
    store,
    fetch = globalThis.fetch?.bind(globalThis),
    clock = realClock,
    lock = webLock,
    openChannel = openBroadcastChannel,
    concurrency = 3,
    baseDelayMs = 1000,
    maxDelayMs = 60000,
    random = Math.random,
    url = "/api/tasks",
    headers = {},
    newKey = newIdempotencyKey,
    onChange = () => {},
    onCreated = () => {},
    onRefused = () => {},
  }) {
    if (!store) throw new TypeError("UploadQueue needs a store");
    this.#store = store;
    this.#fetch = fetch;
    this.#clock = clock;
    this.#lock = lock;
    this.#openChannel = openChannel;
    this.#concurrency = concurrency;
    this.#baseDelay = baseDelayMs;
    this.#maxDelay = maxDelayMs;
    this.#random = random;
    this.#url = url;
    this.#headers = headers;
    this.#newKey = newKey;
    this.#on = {onChange, onCreated, onRefused};
  }

  /** Reads the store and resumes sending what is still queued there. */
  async start() {
    if (this.#running) return;
    this.#running = true;
    this.#channel = joinChannel(this.#openChannel, this.#hear);
    await this.reload({prune: true});
  }

  /** Stops starting uploads (those out finish); closes the channel. */
  stop() {
    this.#running = false;
    this.#disarm();
    if (this.#channel) {
      this.#channel.removeEventListener("message", this.#hear);
      this.#channel.close?.();
      this.#channel = null;
    }
  }

  /**
   * Queues photos. Each entry: {batch, type, prompt?, files: [File|Blob, ...], fields?: {name: value}}; a
   * File's name goes with it (a Blob's `name` may be given as entry.names). Resolves once they are stored.
   * @returns {Promise<object[]>} the new records
   */
  async add(entries) {
    const now = this.#clock.now();
    const records = entries.map((entry) => {
      const files = entry.files.map((file, index) => ({
        blob: file, name: entry.names?.[index] ?? file.name ?? `photo-${index + 1}`,
      }));
      return {
        key: this.#newKey(), batch: entry.batch ?? null, type: entry.type, prompt: entry.prompt ?? "",
        fields: entry.fields ?? {}, files, name: files[0]?.name ?? "",
        size: files.reduce((sum, file) => sum + (file.blob.size ?? 0), 0),
        state: "queued", tries: 0, addedAt: now, updatedAt: now, order: ++this.#order,
        taskId: null, detail: null, code: null,
      };
    });
    for (const record of records) {
      await this.#store.put(record);
      this.#items.set(record.key, record);
    }
    for (const batch of new Set(records.map((record) => record.batch))) this.#changed(batch);
    this.#tell();
    this.#pump();
    return records;
  }

  /** Takes the store's view again (another tab changed it), and sends what is queued. */
  async reload({prune = false} = {}) {
    let stored;
    try {
      stored = await this.#store.getAll();
    } catch (error) {
      report(error);
      return;
    }
    const now = this.#clock.now();
    const touched = new Set();
    const seen = new Set();
    for (const record of stored.sort((a, b) => a.order - b.order)) {
      if (prune && record.state !== "queued" && now - record.updatedAt > KEEP_SETTLED_MS) {
        await this.#store.delete(record.key).catch(report);
        continue;
      }
      seen.add(record.key);
      this.#order = Math.max(this.#order, record.order ?? 0);
      const known = this.#items.get(record.key);
      if (this.#sending.has(record.key)) continue; // this page's view of a photo it is sending is the newest
      if (!known || known.state !== record.state || known.updatedAt !== record.updatedAt) touched.add(record.batch);
      this.#items.set(record.key, record);
    }
    for (const [key, record] of this.#items) {
      if (!seen.has(key) && !this.#sending.has(key)) {
        this.#items.delete(key);
        touched.add(record.batch);
      }
    }
    for (const batch of touched) this.#changed(batch);
    this.#pump();
  }

  /** The batches with records here, oldest first. */
  batches() {
    const first = new Map();
    for (const record of this.#sorted()) if (!first.has(record.batch)) first.set(record.batch, record.addedAt);
    return [...first.keys()];
  }

  /** A batch's records, in the order they were queued (without their files' bytes being read). */
  items(batch) {
    return this.#sorted().filter((record) => record.batch === batch);
  }

  /**
   * A batch's upload tally: photos `total`, `sent` (the server has their task), `refused`, `queued` (still to
   * send, `sending` of them right now), and the bytes of all and of those sent; `waitingUntil` is when a paused
   * queue tries again (null if not paused).
   */
  progress(batch) {
    const tally = {total: 0, sent: 0, refused: 0, queued: 0, sending: 0, bytes: 0, bytesSent: 0, waitingUntil: null};
    for (const record of this.#items.values()) {
      if (record.batch !== batch) continue;
      tally.total += 1;
      tally.bytes += record.size;
      if (record.state === "done") {
        tally.sent += 1;
        tally.bytesSent += record.size;
      } else if (record.state === "refused") tally.refused += 1;
      else {
        tally.queued += 1;
        if (this.#sending.has(record.key)) tally.sending += 1;
      }
    }
    if (tally.queued && this.#pausedUntil > this.#clock.now()) tally.waitingUntil = this.#pausedUntil;
    return tally;
  }

  /** Stops sending a batch's photos not sent yet (those out now still finish); forgets the batch's records. */
  async cancel(batch) {
    for (const record of this.items(batch)) {
      if (this.#sending.has(record.key)) continue;
      this.#items.delete(record.key);
      await this.#store.delete(record.key).catch(report);
    }
    this.#changed(batch);
    this.#tell();
  }

  /** Forgets a settled batch's records (the page no longer shows its upload tally). */
  async dismiss(batch) {
    for (const record of this.items(batch)) {
      if (record.state === "queued") continue;
      this.#items.delete(record.key);
      await this.#store.delete(record.key).catch(report);
    }
    this.#changed(batch);
  }

  get pausedUntil() {
    return this.#pausedUntil;
  }

  #sorted() {
    return [...this.#items.values()].sort((a, b) => a.order - b.order);
  }

  #changed(batch) {
    try {
      this.#on.onChange(batch);
    } catch (error) {
      report(error);
    }
  }

  #tell() {
    try {
      this.#channel?.postMessage({changed: true});
    } catch (error) {
      report(error);
    }
  }

  // ---- the scheduler

  // Starts uploads while there is room and the queue is not paused; arms one timer for the next moment there is
  // something to do (the end of a pause, a photo another tab held).
  #pump() {
    if (!this.#running) return;
    const now = this.#clock.now();
    let wakeAt = Infinity;
    if (this.#pausedUntil > now) wakeAt = this.#pausedUntil;
    else {
      for (const record of this.#sorted()) {
        if (this.#sending.size >= this.#concurrency) break;
        if (record.state !== "queued" || this.#sending.has(record.key)) continue;
        const lookAgain = this.#elsewhere.get(record.key) ?? 0;
        if (lookAgain > now) {
          wakeAt = Math.min(wakeAt, lookAgain);
          continue;
        }
        this.#send(record);
      }
    }
    this.#arm(wakeAt);
  }

  #arm(at) {
    if (at === this.#timerAt) return;
    this.#disarm();
    if (at === Infinity) return;
    this.#timerAt = at;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = null;
      this.#timerAt = Infinity;
      this.#pump();
    }, Math.max(0, at - this.#clock.now()));
  }

  #disarm() {
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = Infinity;
  }

  async #send(record) {
    const key = record.key;
    this.#sending.add(key);
    this.#changed(record.batch);
    let held = false;
    try {
      held = await this.#lock(`${UPLOAD_CHANNEL}.${key}`, () => this.#sendHeld(key));
    } catch (error) {
      report(error);
    }
    this.#sending.delete(key);
    if (!held) {
      // Another tab is sending it: look again in a while (its news usually comes first).
      this.#elsewhere.set(key, this.#clock.now() + this.#baseDelay * 2);
    } else this.#elsewhere.delete(key);
    this.#changed(record.batch);
    this.#pump();
  }

  // Holding the photo's lock: its record is read again (another tab may have sent it meanwhile), then sent.
  async #sendHeld(key) {
    const current = await this.#store.get(key);
    if (!current || current.state !== "queued") {
      if (current) this.#items.set(key, current);
      else this.#items.delete(key);
      return;
    }
    if (!this.#items.has(key)) return; // canceled here while the lock was being taken
    let response = null;
    try {
      response = await this.#fetch(this.#url, {
        method: "POST", body: this.#body(current), credentials: "same-origin", cache: "no-store",
        headers: {Accept: "application/json", ...this.#headers, "Idempotency-Key": key},
      });
    } catch {
      response = null; // unreachable: the same as any transient failure
    }
    const status = response?.status ?? 0;
    const data = response ? await response.json().catch(() => null) : null;
    if (status >= 200 && status < 300) await this.#settle(current, "done", {taskId: data?.id ?? null}, data);
    else if (isTransient(status)) await this.#postpone(current, response);
    else await this.#settle(current, "refused", {detail: data?.detail ?? null, code: data?.code ?? `http_${status}`});
  }

  #body(record) {
    const body = new FormData();
    body.append("type", record.type);
    if (record.prompt || record.type === "CREATE") body.append("prompt", record.prompt);
    if (record.batch) body.append("batch", record.batch);
    for (const [name, value] of Object.entries(record.fields ?? {})) body.append(name, value);
    for (const file of record.files) body.append("reference_images", file.blob, file.name);
    return body;
  }

  async #settle(record, state, fields, task = null) {
    // The file is not needed any more: only the tally and, for a refused photo, the server's words stay.
    const settled = {...record, ...fields, state, files: [], updatedAt: this.#clock.now()};
    this.#failures = 0;
    if (this.#items.has(record.key)) this.#items.set(record.key, settled);
    await this.#store.put(settled).catch(report);
    this.#tell();
    try {
      if (state === "done") this.#on.onCreated(task, settled);
      else this.#on.onRefused(settled);
    } catch (error) {
      report(error);
    }
  }

  async #postpone(record, response) {
    const now = this.#clock.now();
    this.#failures += 1;
    const told = retryAfterMs(response?.headers?.get?.("Retry-After"), now);
    const backoff = Math.min(this.#maxDelay, this.#baseDelay * 2 ** (this.#failures - 1));
    const wait = told ?? backoff * (0.5 + this.#random() / 2);
    this.#pausedUntil = Math.max(this.#pausedUntil, now + wait);
    // To the back of the line: a photo that keeps failing does not hold up the others after the pause.
    const later = {...record, tries: (record.tries ?? 0) + 1, order: ++this.#order, updatedAt: now};
    if (this.#items.has(record.key)) this.#items.set(record.key, later);
    await this.#store.put(later).catch(report);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The store in a browser: one IndexedDB object store, records keyed by their Idempotency-Key.

const DB_NAME = "genkeep-uploads";
const STORE = "queue";

const asPromise = (request) => new Promise((resolve, reject) => {
  request.onsuccess = () => resolve(request.result);
  request.onerror = () => reject(request.error);
});

/** An IndexedDB store for one generation type's queue (records of other types stay out of its view). */
export async function openUploadStore(type, {indexedDB = globalThis.indexedDB} = {}) {
  const open = indexedDB.open(DB_NAME, 1);
  open.onupgradeneeded = () => open.result.createObjectStore(STORE, {keyPath: "key"});
  const db = await asPromise(open);
  const run = (mode, fn) => {
    const transaction = db.transaction(STORE, mode);
    return asPromise(fn(transaction.objectStore(STORE)));
  };
  return {
    getAll: async () => (await run("readonly", (store) => store.getAll())).filter((record) => record.type === type),
    get: async (key) => {
      const record = await run("readonly", (store) => store.get(key));
      return record?.type === type ? record : undefined;
    },
    put: (record) => run("readwrite", (store) => store.put(record)).then(() => undefined),
    delete: (key) => run("readwrite", (store) => store.delete(key)).then(() => undefined),
  };
}
