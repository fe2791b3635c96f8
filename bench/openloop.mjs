#!/usr/bin/env node
// An open-loop HTTP load generator: requests go out at a fixed rate whatever the server does, and each latency is
// counted from the moment its request was due, not from when it was finally sent.
//
// Why: a closed-loop tool (wrk, hey, ab) sends the next request on a connection only after the previous answer, so
// when the server stalls it stops sending and the stall shows up in one sample instead of in every request that
// would have arrived meanwhile ("coordinated omission"). Here request i is due at start + i/rate; if the event loop
// or every socket is busy, it waits, and that wait is part of its latency. After the last request is due, answers
// are awaited for --drain-ms; a request unanswered by then counts as an error and enters the percentiles at the
// time it had waited (a lower bound, reported as such).
//
//   node bench/openloop.mjs --base http://127.0.0.1:8000 --lines poll.lines --rate 2000 --seconds 10
//   (also --warmup 1 s, unmeasured; --sockets 128 keep-alive connections at most; --seed; --cookie-name)
//
// --lines is the file the wrk Lua scripts read: one "<owner cookie>\t<path>" per line; each request takes a random
// line (seeded) and sends GET <path> with that owner's cookie. Prints one JSON object (see summarize()). No
// dependencies beyond Node's own modules.

import http from "node:http";
import {readFileSync} from "node:fs";
import {performance} from "node:perf_hooks";
import {fileURLToPath} from "node:url";
import {parseArgs} from "node:util";

// The generator counts as having kept up when its own p99 delay in sending is below this; Node's timers fire
// with 1 ms granularity, so a millisecond or two is expected and is counted in every latency anyway.
export const KEPT_UP_LAG_MS = 5;

// When request `index` is due, in ms after the start, at `rate` requests per second.
export function dueAt(index, rate) {
  return (index * 1000) / rate;
}

// How many requests (counted from 0, capped at total) are due `elapsedMs` after the start: every one whose due
// time has come, however late the caller is in asking; none is skipped and none is moved later.
export function dueCount(elapsedMs, rate, total) {
  if (elapsedMs < 0) return 0;
  let count = Math.min(total, Math.floor((elapsedMs * rate) / 1000) + 1);
  // Floating-point rounding must never let a request go before its own dueAt.
  while (count > 0 && dueAt(count - 1, rate) > elapsedMs) count -= 1;
  while (count < total && dueAt(count, rate) <= elapsedMs) count += 1;
  return count;
}

// The value at percentile q (0-100] of ascending values, nearest rank: the smallest value with at least q% of
// the samples at or below it.
export function percentile(sorted, q) {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((q / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

// A small seeded PRNG (mulberry32), so two runs pick the same lines in the same order.
export function seededRandom(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// The wrk scripts' data file: "<cookie>\t<path>" lines, to {cookie header, path} pairs.
export function parseLines(text, cookieName) {
  const lines = [];
  for (const raw of text.split("\n")) {
    if (raw === "") continue;
    const tab = raw.indexOf("\t");
    if (tab < 0) throw new Error(`a line without a tab: ${JSON.stringify(raw.slice(0, 80))}`);
    lines.push({cookie: `${cookieName}=${raw.slice(0, tab)}`, path: raw.slice(tab + 1)});
  }
  if (lines.length === 0) throw new Error("no lines to request");
  return lines;
}

const round = (value) => (value === null ? null : Math.round(value * 1000) / 1000);

// Every measured request's outcome, and what the run as a whole looked like.
export class Recorder {
  constructor(count) {
    // Latency from the due time of every measured request: answered ones exactly; those still unanswered when the
    // run ends enter at the time they had waited by then, a lower bound (so a stalled server cannot look fast by
    // not answering), and every percentile at or above the smallest such bound is itself only a lower bound.
    this.latencies = new Float64Array(count);
    this.lags = new Float64Array(count); // how late the generator itself was in sending each request
    this.latencyCount = 0;
    this.lagCount = 0;
    this.sent = 0;
    this.ok = 0;
    this.non2xx = 0;
    this.socketErrors = 0;
    this.unanswered = 0;
    this.unansweredMin = Infinity;
    this.lastEnd = 0;
  }

  sending(dueMs, nowMs) {
    this.sent += 1;
    this.lags[this.lagCount++] = Math.max(0, nowMs - dueMs);
  }

  answered(dueMs, endMs, status) {
    this.latencies[this.latencyCount++] = endMs - dueMs;
    if (status >= 200 && status < 300) this.ok += 1;
    else this.non2xx += 1;
    this.lastEnd = Math.max(this.lastEnd, endMs);
  }

  // Still waiting when the run gave up at endMs.
  givenUp(dueMs, endMs) {
    const waited = endMs - dueMs;
    this.latencies[this.latencyCount++] = waited;
    this.unanswered += 1;
    this.unansweredMin = Math.min(this.unansweredMin, waited);
  }

  failed(endMs) {
    this.socketErrors += 1;
    this.lastEnd = Math.max(this.lastEnd, endMs);
  }

  // The JSON the bench reads. windowStartMs is the first measured request's due time.
  summarize({rate, seconds, windowStartMs}) {
    const latencies = this.latencies.slice(0, this.latencyCount).sort();
    const lags = this.lags.slice(0, this.lagCount).sort();
    const windowMs = this.lastEnd > windowStartMs ? this.lastEnd - windowStartMs : seconds * 1000;
    const lagP99 = percentile(lags, 99) ?? 0;
    const keptUp = lagP99 <= KEPT_UP_LAG_MS;
    return {
      rate,
      seconds,
      sent: this.sent,
      completed: this.ok,
      errors: this.non2xx + this.socketErrors + this.unanswered,
      non_2xx: this.non2xx,
      socket_errors: this.socketErrors,
      unanswered: this.unanswered,
      unanswered_min_ms: this.unanswered ? round(this.unansweredMin) : null,
      achieved_rps: round(this.ok / Math.max(windowMs / 1000, seconds)),
      p50_ms: round(percentile(latencies, 50)),
      p90_ms: round(percentile(latencies, 90)),
      p99_ms: round(percentile(latencies, 99)),
      p999_ms: round(percentile(latencies, 99.9)),
      max_ms: round(latencies.length ? latencies[latencies.length - 1] : null),
      schedule_lag_ms: {p50: round(percentile(lags, 50)), p99: round(lagP99),
                        max: round(lags.length ? lags[lags.length - 1] : null)},
      kept_up: keptUp,
      warning: keptUp ? null
        : `the generator itself sent late (p99 ${lagP99.toFixed(1)} ms behind its schedule): these latencies `
          + "include its own delay, so they overstate the server's",
    };
  }
}

// Drive base+paths at `rate` for warmup + seconds; only requests due after the warm-up are measured. After the
// last request is due, answers are awaited for at most drainMs; whatever is still unanswered then is given up.
export async function run({base, lines, rate, seconds, warmup = 1, drainMs = 2000, sockets = 128, seed = 1}) {
  const target = new URL(base);
  const agent = new http.Agent({keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets});
  const warmCount = Math.round(warmup * rate);
  const total = warmCount + Math.round(seconds * rate);
  const recorder = new Recorder(total - warmCount);
  const random = seededRandom(seed);
  const inFlight = new Set(); // {req, due, measured, settled}
  let next = 0;
  const cpuBefore = process.cpuUsage();
  const start = performance.now() + 20; // a moment to set up before the first due time

  const fire = (index, now) => {
    const line = lines[Math.floor(random() * lines.length)];
    const due = start + dueAt(index, rate);
    const measured = index >= warmCount;
    if (measured) recorder.sending(due, now);
    const entry = {due, measured, settled: false, req: null};
    const settle = () => {
      if (entry.settled) return false;
      entry.settled = true;
      inFlight.delete(entry);
      return true;
    };
    // When no socket is free the agent queues the request; the time it waits there is part of its latency.
    entry.req = http.request({
      agent, host: target.hostname, port: target.port, path: line.path, method: "GET",
      headers: {Cookie: line.cookie},
    }, (res) => {
      res.resume();
      res.on("end", () => {
        if (settle() && measured) recorder.answered(due, performance.now(), res.statusCode);
      });
    });
    entry.req.on("error", () => {
      if (settle() && measured) recorder.failed(performance.now());
    });
    inFlight.add(entry);
    entry.req.end();
  };

  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = dueCount(now - start, rate, total);
      while (next < due) fire(next++, now);
      if (next >= total) {
        resolve();
        return;
      }
      setTimeout(tick, Math.max(0, start + dueAt(next, rate) - performance.now()));
    };
    setTimeout(tick, Math.max(0, start - performance.now()));
  });
  const giveUpAt = start + dueAt(total - 1, rate) + drainMs;
  await new Promise((resolve) => {
    const drained = () => (inFlight.size === 0 || performance.now() >= giveUpAt ? resolve() : setTimeout(drained, 5));
    drained();
  });
  const end = performance.now();
  for (const entry of inFlight) {
    entry.settled = true;
    if (entry.measured) recorder.givenUp(entry.due, end);
    entry.req.destroy(); // sent or still queued in the agent: either way, nothing more goes out for it
  }
  inFlight.clear();
  agent.destroy();
  const cpu = process.cpuUsage(cpuBefore);
  return {
    ...recorder.summarize({rate, seconds, windowStartMs: start + dueAt(warmCount, rate)}),
    warmup_seconds: warmup,
    drain_ms: drainMs,
    sockets,
    generator_cpu_share: round((cpu.user + cpu.system) / 1000 / (end - start)),
  };
}

async function main() {
  const {values} = parseArgs({options: {
    base: {type: "string"},
    lines: {type: "string"},
    rate: {type: "string"},
    seconds: {type: "string", default: "10"},
    warmup: {type: "string", default: "1"},
    "drain-ms": {type: "string", default: "2000"},
    sockets: {type: "string", default: "128"},
    seed: {type: "string", default: "1"},
    "cookie-name": {type: "string", default: "genkeep_owner"},
  }});
  const number = (name, min) => {
    const value = Number(values[name]);
    if (!Number.isFinite(value) || value < min) throw new Error(`--${name} must be a number of at least ${min}`);
    return value;
  };
  if (!values.base || !values.lines) throw new Error("--base and --lines are required");
  const result = await run({
    base: values.base,
    lines: parseLines(readFileSync(values.lines, "utf8"), values["cookie-name"]),
    rate: number("rate", 0.001),
    seconds: number("seconds", 0.001),
    warmup: number("warmup", 0),
    drainMs: number("drain-ms", 0),
    sockets: number("sockets", 1),
    seed: number("seed", 0),
  });
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((error) => {
    process.stderr.write(`openloop: ${error.message}\n`);
    process.exit(2);
  });
}
