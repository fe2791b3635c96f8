// The clock the page modules take instead of the browser's, for tests: time moves only when a test advances it,
// and the timers due meanwhile fire in order (late by `lateBy`, like a busy browser's, if a test asks).

/** Lets every promise callback that is ready run (the modules await several in a row). */
export async function settle(rounds = 30) {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

export class FakeClock {
  constructor(start = 0) {
    this.time = start;
    this.timers = new Map();
    this.nextId = 1;
    this.scheduled = []; // {at, delay} for each setTimeout the module under test made
    this.lateBy = 0; // fire timers this many ms after they are due
  }

  now() {
    return this.time;
  }

  setTimeout(fn, delay) {
    const id = this.nextId++;
    this.scheduled.push({at: this.time, delay});
    this.timers.set(id, {due: this.time + delay, fn});
    return id;
  }

  clearTimeout(id) {
    this.timers.delete(id);
  }

  // A fake server's own delays: not the module's timers, so kept out of `scheduled` and never late.
  later(delay, fn) {
    this.timers.set(this.nextId++, {due: this.time + delay, fn, server: true});
  }

  async advance(ms) {
    const end = this.time + ms;
    for (;;) {
      await settle();
      let nextId = null;
      let next = null;
      for (const [id, timer] of this.timers) {
        const fires = timer.due + (timer.server ? 0 : this.lateBy);
        if (fires <= end && (next === null || fires < next.fires)) {
          nextId = id;
          next = {...timer, fires};
        }
      }
      if (next === null) break;
      this.timers.delete(nextId);
      this.time = Math.max(this.time, next.fires);
      next.fn();
    }
    this.time = end;
    await settle();
  }
}
