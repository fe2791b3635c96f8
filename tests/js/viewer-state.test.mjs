// The result viewer's state: its place in the address, its place in the page's list, zoom and pan, the divider.
// Run with `node --test tests/js/`.
import assert from "node:assert/strict";
import {describe, test} from "node:test";

import {
  ViewerRoute, ZoomPan, dividerAfterKey, hashWithTask, neighbours, plainId, taskIdFromHash,
} from "../../src/genkeep/web/static/viewer-state.js";

describe("the address names the open task", () => {
  test("a task id is read from #task=<id>", () => {
    assert.equal(taskIdFromHash("#task=3f2a9c"), "3f2a9c");
    assert.equal(taskIdFromHash("task=3f2a9c"), "3f2a9c");
    assert.equal(taskIdFromHash("#other=1&task=ab_C-9"), "ab_C-9");
  });

  test("no id, an empty one or odd text names nothing", () => {
    for (const hash of ["", "#", "#task=", "#history", "#task=../api", "#task=a%2Fb", "#task=a b",
      `#task=${"x".repeat(129)}`, null, undefined]) {
      assert.equal(taskIdFromHash(hash), null, String(hash));
    }
  });

  test("setting the id keeps the rest of the hash, removing it leaves nothing behind", () => {
    assert.equal(hashWithTask("", "abc"), "#task=abc");
    assert.equal(hashWithTask("#task=old", "new"), "#task=new");
    assert.equal(hashWithTask("#keep=1", "abc"), "#keep=1&task=abc");
    assert.equal(hashWithTask("#task=abc", null), "");
    assert.equal(hashWithTask("#keep=1&task=abc", null), "#keep=1");
  });

  test("a plain id is what may go into an API path", () => {
    assert.equal(plainId("0123abcdef"), "0123abcdef");
    assert.equal(plainId(""), null);
    assert.equal(plainId(42), null);
    assert.equal(plainId("a?b"), null);
  });
});

// A fake browser history: entries of hashes, and where we are in them.
class FakeHistory {
  constructor(hash = "") {
    this.entries = [hash];
    this.at = 0;
  }

  hash() { return this.entries[this.at]; }

  push(hash) {
    this.entries = [...this.entries.slice(0, this.at + 1), hash];
    this.at += 1;
  }

  replace(hash) { this.entries[this.at] = hash; }

  back() { this.at = Math.max(0, this.at - 1); }

  forward() { this.at = Math.min(this.entries.length - 1, this.at + 1); }
}

describe("the viewer's history entries", () => {
  test("opening adds one entry, moving replaces it, closing goes back to the page as it was", () => {
    const history = new FakeHistory("");
    const route = new ViewerRoute({history});
    route.open("a");
    assert.deepEqual(history.entries, ["", "#task=a"]);
    route.open("b");
    route.open("c");
    assert.deepEqual(history.entries, ["", "#task=c"]);
    assert.equal(route.taskId, "c");
    route.close();
    assert.equal(history.hash(), "");
    assert.equal(route.taskId, null);
  });

  test("opened from a reload or a shared link, closing removes the hash without leaving the page", () => {
    const history = new FakeHistory("#task=a");
    const route = new ViewerRoute({history});
    assert.equal(route.taskId, "a");
    route.open("a"); // the page opening what the address names changes nothing
    assert.deepEqual(history.entries, ["#task=a"]);
    route.close();
    assert.deepEqual(history.entries, [""]);
    assert.equal(history.at, 0);
  });

  test("after Back closed it, reopening and closing never steps back off the page", () => {
    const history = new FakeHistory("");
    const route = new ViewerRoute({history});
    route.open("a");
    history.back(); // the browser's Back button
    assert.equal(route.changed(), null);
    history.forward(); // and Forward: the viewer reopens from the address
    assert.equal(route.changed(), "a");
    route.close();
    assert.equal(history.at, 1, "stayed on the page's own entry");
    assert.equal(history.hash(), "");
  });

  test("closing a closed viewer does nothing", () => {
    const history = new FakeHistory("#keep=1");
    const route = new ViewerRoute({history});
    route.close();
    assert.deepEqual(history.entries, ["#keep=1"]);
  });
});

describe("moving through the page's results", () => {
  const ids = ["a", "b", "c"];

  test("the middle one has both neighbours", () => {
    assert.deepEqual(neighbours(ids, "b"), {index: 1, count: 3, previous: "a", next: "c"});
  });

  test("the first has no previous and the last no next: the ends do not wrap around", () => {
    assert.deepEqual(neighbours(ids, "a"), {index: 0, count: 3, previous: null, next: "b"});
    assert.deepEqual(neighbours(ids, "c"), {index: 2, count: 3, previous: "b", next: null});
  });

  test("a task that is not in the list (opened from a link) has no neighbours", () => {
    assert.deepEqual(neighbours(ids, "z"), {index: -1, count: 3, previous: null, next: null});
    assert.deepEqual(neighbours([], "a"), {index: -1, count: 0, previous: null, next: null});
    assert.deepEqual(neighbours(["a"], "a"), {index: 0, count: 1, previous: null, next: null});
  });
});

describe("the before/after divider from the keyboard", () => {
  test("arrows move it a step, Page keys a long step, Home and End to the ends", () => {
    assert.equal(dividerAfterKey(50, "ArrowLeft"), 45);
    assert.equal(dividerAfterKey(50, "ArrowDown"), 45);
    assert.equal(dividerAfterKey(50, "ArrowRight"), 55);
    assert.equal(dividerAfterKey(50, "ArrowUp"), 55);
    assert.equal(dividerAfterKey(50, "PageUp"), 75);
    assert.equal(dividerAfterKey(50, "PageDown"), 25);
    assert.equal(dividerAfterKey(50, "Home"), 0);
    assert.equal(dividerAfterKey(50, "End"), 100);
    assert.equal(dividerAfterKey(50, "ArrowRight", {step: 1}), 51);
  });

  test("it stays between 0 and 100", () => {
    assert.equal(dividerAfterKey(2, "ArrowLeft"), 0);
    assert.equal(dividerAfterKey(98, "PageUp"), 100);
  });

  test("other keys are not its business", () => {
    assert.equal(dividerAfterKey(50, "Escape"), null);
    assert.equal(dividerAfterKey(50, "c"), null);
  });
});

describe("zoom and pan", () => {
  const viewed = (imageWidth, imageHeight, viewWidth = 800, viewHeight = 600) => {
    const zoom = new ZoomPan();
    zoom.resize(viewWidth, viewHeight);
    zoom.load(imageWidth, imageHeight);
    return zoom;
  };

  test("a large picture opens fitted and centred", () => {
    const zoom = viewed(1200, 1200);
    assert.equal(zoom.scale, 0.5);
    assert.equal(zoom.percent, 50);
    assert.deepEqual(zoom.box, {left: 100, top: 0, width: 600, height: 600});
    assert.equal(zoom.fitted, true);
    assert.equal(zoom.pannable, false);
    assert.equal(zoom.canZoomOut, false);
    assert.equal(zoom.canZoomIn, true);
  });

  test("a small picture is not enlarged past 100 %", () => {
    const zoom = viewed(400, 300);
    assert.equal(zoom.scale, 1);
    assert.deepEqual(zoom.box, {left: 200, top: 150, width: 400, height: 300});
  });

  test("zooming keeps the picture point under the pointer where it was", () => {
    const zoom = viewed(1200, 1200);
    const at = {x: 250, y: 150}; // picture point (300, 300) at scale 0.5
    zoom.zoomTo(1, at);
    assert.equal(zoom.scale, 1);
    assert.equal(zoom.x + 300 * zoom.scale, 250);
    assert.equal(zoom.y + 300 * zoom.scale, 150);
    assert.equal(zoom.fitted, false);
    assert.equal(zoom.pannable, true);
  });

  test("zoom stops at the fitted size and at 400 %", () => {
    const zoom = viewed(1200, 1200);
    zoom.zoomBy(0.1);
    assert.equal(zoom.scale, 0.5);
    for (let i = 0; i < 40; i++) zoom.zoomBy(1.25);
    assert.equal(zoom.scale, 4);
    assert.equal(zoom.canZoomIn, false);
  });

  test("100 % toggles with fitted, and a picture smaller than the screen toggles to 200 %", () => {
    const zoom = viewed(1200, 1200);
    zoom.toggleActual();
    assert.equal(zoom.percent, 100);
    zoom.toggleActual();
    assert.equal(zoom.percent, 50);
    assert.equal(zoom.fitted, true);
    const small = viewed(300, 200);
    small.toggleActual();
    assert.equal(small.percent, 200);
  });

  test("panning stops at the picture's edges; a side smaller than the screen stays centred", () => {
    const zoom = viewed(1200, 600);
    zoom.zoomTo(1); // 1200 x 600 in 800 x 600: wider than the view, exactly as tall
    zoom.panBy(10_000, 300);
    assert.equal(zoom.x, 0, "left edge at the view's left");
    assert.equal(zoom.y, 0, "as tall as the view: no vertical movement");
    zoom.panBy(-10_000, 0);
    assert.equal(zoom.x, 800 - 1200, "right edge at the view's right");
  });

  test("a pinch zooms around the fingers and follows their midpoint", () => {
    const zoom = viewed(1200, 1200);
    zoom.pinch(2, {x: 400, y: 300}, {x: 380, y: 300});
    assert.equal(zoom.scale, 1);
    // Picture point (600, 600) was under (400, 300); after the pinch it follows the fingers 20 px left.
    assert.equal(zoom.x + 600, 380);
    assert.equal(zoom.y + 600, 300);
  });

  test("a fitted picture stays fitted when the screen turns; a zoomed one keeps its zoom", () => {
    const zoom = viewed(1200, 1200);
    zoom.resize(360, 500);
    assert.equal(zoom.scale, 0.3);
    assert.equal(zoom.fitted, true);
    zoom.zoomTo(1);
    zoom.resize(800, 600);
    assert.equal(zoom.scale, 1);
    assert.equal(zoom.fitted, false);
  });

  test("a zoomed picture keeps what was in the middle of the screen in the middle when the screen changes", () => {
    const zoom = viewed(2000, 2000);
    zoom.zoomTo(1, {x: 400, y: 300}); // picture point (1000, 1000) in the middle of 800 x 600
    zoom.panBy(-100, -50); // now (1100, 1050) is in the middle
    zoom.resize(360, 640);
    assert.equal(zoom.x + 1100, 180);
    assert.equal(zoom.y + 1050, 320);
  });

  test("the divider's pointer position is a fraction of the picture's width", () => {
    const zoom = viewed(1200, 1200); // drawn from x=100 to x=700
    assert.equal(zoom.fractionAt(100), 0);
    assert.equal(zoom.fractionAt(400), 0.5);
    assert.equal(zoom.fractionAt(700), 1);
    assert.equal(zoom.fractionAt(0), 0, "left of the picture");
    assert.equal(zoom.fractionAt(799), 1, "right of the picture");
  });

  test("before the picture or the screen is measured, nothing divides by zero", () => {
    const zoom = new ZoomPan();
    zoom.load(1000, 800);
    assert.equal(zoom.scale, 1);
    assert.ok(Number.isFinite(zoom.x) && Number.isFinite(zoom.y));
    assert.equal(new ZoomPan().fractionAt(10), 0.5);
  });
});
