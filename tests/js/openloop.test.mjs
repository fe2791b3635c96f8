// The bench's open-loop load generator: its schedule, its percentiles, and what it counts. No timed assertions:
// the runs against a local server check only counts, which do not depend on how fast this machine is.
import assert from "node:assert/strict";
import http from "node:http";
import {after, before, describe, test} from "node:test";

import {
  dueAt, dueCount, parseLines, percentile, Recorder, run, seededRandom,
} from "../../bench/openloop.mjs";

describe("schedule", () => {
  test("request i is due at i / rate, whatever happened before", () => {
    assert.equal(dueAt(0, 1000), 0);
    assert.equal(dueAt(10, 1000), 10);
    assert.equal(dueAt(3, 4), 750);
  });

  test("every request whose time has come is due, none early", () => {
    assert.equal(dueCount(-1, 1000, 100), 0);
    assert.equal(dueCount(0, 1000, 100), 1);
    assert.equal(dueCount(10.5, 1000, 100), 11);
    assert.equal(dueCount(10, 1000, 100), 11);
    assert.equal(dueCount(9.999, 1000, 100), 10);
  });

  test("a late look at the clock makes every missed request due at once, none skipped", () => {
    // The loop was blocked for 500 ms: all 50 requests of that half second go now, each keeping its own due time.
    assert.equal(dueCount(499.9, 100, 1000), 50);
    assert.equal(dueCount(10_000, 100, 1000), 1000);
  });

  test("awkward rates never let floating-point rounding send a request before its due time", () => {
    for (const rate of [3, 7, 333.3, 3650, 7049]) {
      for (let index = 0; index < 2000; index += 1) {
        const at = dueAt(index, rate);
        assert.equal(dueCount(at, rate, 1e9), index + 1, `rate ${rate} index ${index}`);
        assert.equal(dueCount(at - 1e-6, rate, 1e9), index, `rate ${rate} index ${index}`);
      }
    }
  });
});

describe("percentiles", () => {
  const hundred = Float64Array.from({length: 100}, (_, i) => i + 1);

  test("nearest rank over sorted values", () => {
    assert.equal(percentile(hundred, 50), 50);
    assert.equal(percentile(hundred, 99), 99);
    assert.equal(percentile(hundred, 99.9), 100);
    assert.equal(percentile(hundred, 100), 100);
    assert.equal(percentile(Float64Array.of(7), 50), 7);
    assert.equal(percentile(new Float64Array(0), 50), null);
  });
});

describe("recorder", () => {
  test("a stall counts against every request due during it, not only the one that waited", () => {
    // 100 requests due 10 ms apart on one connection; the server answers nothing for the first second, then
    // everything at once. A closed-loop tool would not have sent requests 1..99 until then and would report one
    // slow sample; counted from their due times, half of them waited at least half a second.
    const recorder = new Recorder(100);
    for (let i = 0; i < 100; i += 1) {
      recorder.sending(i * 10, i * 10);
      recorder.answered(i * 10, 1000, 200);
    }
    const summary = recorder.summarize({rate: 100, seconds: 1, windowStartMs: 0});
    assert.equal(summary.p50_ms, 500);
    assert.equal(summary.p99_ms, 990);
    assert.equal(summary.completed, 100);
    assert.equal(summary.errors, 0);
  });

  test("errors are counted by kind; one never answered enters the percentiles at what it had waited", () => {
    const recorder = new Recorder(4);
    for (let i = 0; i < 4; i += 1) recorder.sending(i, i);
    recorder.answered(0, 3, 200);
    recorder.answered(1, 4, 503);
    recorder.failed(5);
    recorder.givenUp(3, 2003);
    const summary = recorder.summarize({rate: 4, seconds: 1, windowStartMs: 0});
    assert.deepEqual(
      [summary.sent, summary.completed, summary.errors, summary.non_2xx, summary.socket_errors, summary.unanswered],
      [4, 1, 3, 1, 1, 1],
    );
    assert.equal(summary.max_ms, 2000);
    assert.equal(summary.unanswered_min_ms, 2000);
  });

  test("sending behind schedule is reported, not hidden", () => {
    const recorder = new Recorder(100);
    for (let i = 0; i < 100; i += 1) {
      const late = i % 10 === 0 ? 40 : 0;
      recorder.sending(i, i + late);
      recorder.answered(i, i + late + 1, 200);
    }
    const summary = recorder.summarize({rate: 1000, seconds: 0.1, windowStartMs: 0});
    assert.equal(summary.kept_up, false);
    assert.equal(summary.schedule_lag_ms.max, 40);
    assert.match(summary.warning, /behind its schedule/);
  });
});

describe("inputs", () => {
  test("the wrk scripts' lines become a cookie and a path", () => {
    assert.deepEqual(parseLines("abc.sig\t/api/tasks/1\nxyz.sig\t/api/ping\n", "genkeep_owner"), [
      {cookie: "genkeep_owner=abc.sig", path: "/api/tasks/1"},
      {cookie: "genkeep_owner=xyz.sig", path: "/api/ping"},
    ]);
    assert.throws(() => parseLines("", "c"), /no lines/);
    assert.throws(() => parseLines("no tab here\n", "c"), /without a tab/);
  });

  test("the same seed picks the same lines", () => {
    const first = seededRandom(7);
    const second = seededRandom(7);
    const a = Array.from({length: 5}, first);
    assert.deepEqual(Array.from({length: 5}, second), a);
    assert.ok(a.every((value) => value >= 0 && value < 1));
  });
});

describe("a run against a local server", () => {
  let server;
  let base;
  const seen = [];

  before(async () => {
    server = http.createServer((req, res) => {
      seen.push({path: req.url, cookie: req.headers.cookie});
      if (req.url === "/never") return; // holds the request open until the client gives up
      res.writeHead(req.url === "/missing" ? 404 : 200, {"content-type": "application/json"});
      res.end("{}");
    });
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${server.address().port}`;
  });

  after(() => {
    server.closeAllConnections();
    server.close();
  });

  test("sends exactly rate x seconds measured requests after the warm-up, each with its line's cookie", async () => {
    seen.length = 0;
    const lines = parseLines("owner-a\t/a\nowner-b\t/b\n", "genkeep_owner");
    const result = await run({base, lines, rate: 200, seconds: 0.5, warmup: 0.1});
    assert.equal(result.sent, 100);
    assert.equal(result.completed, 100);
    assert.equal(result.errors, 0);
    assert.equal(seen.length, 120); // warm-up requests go out too but are not measured
    for (const {path, cookie} of seen) {
      assert.equal(cookie, path === "/a" ? "genkeep_owner=owner-a" : "genkeep_owner=owner-b");
    }
  });

  test("answers that are not 2xx and answers that never come are errors", async () => {
    const missing = await run({base, lines: parseLines("o\t/missing\n", "c"), rate: 100, seconds: 0.2, warmup: 0});
    assert.deepEqual([missing.sent, missing.completed, missing.non_2xx], [20, 0, 20]);
    const never = await run({base, lines: parseLines("o\t/never\n", "c"), rate: 100, seconds: 0.1, warmup: 0,
                             drainMs: 100});
    assert.deepEqual([never.sent, never.completed, never.unanswered, never.errors], [10, 0, 10, 10]);
    // Given up at least drainMs after the last one was due: every wait is at least that, and reported as a bound.
    assert.ok(never.unanswered_min_ms >= 100);
    assert.ok(never.p50_ms >= never.unanswered_min_ms);
  });
});
