// "Use as …": the link from a result to the next page's slot. Run with `node --test tests/js/`.
import assert from "node:assert/strict";
import {describe, test} from "node:test";

import {
  TARGETS, handoffFileName, handoffFromHash, handoffHref, hashWithoutHandoff,
} from "../../src/genkeep/web/static/handoff.js";

const TYPE_PATHS = {CREATE: "/create", WHITE_BACKGROUND: "/white-background", CLOTHING_CHANGE: "/clothing-change"};
const target = (as) => TARGETS.find((one) => one.as === as);

describe("use as …", () => {
  test("each slot's link leads to the page that has it, naming the task and the slot", () => {
    assert.equal(handoffHref(TYPE_PATHS, "t1", target("product")), "/white-background#use=t1&as=product");
    assert.equal(handoffHref(TYPE_PATHS, "t1", target("person")), "/clothing-change#use=t1&as=person");
    assert.equal(handoffHref(TYPE_PATHS, "t1", target("garment")), "/clothing-change#use=t1&as=garment");
    assert.equal(handoffHref(TYPE_PATHS, "t1", target("reference")), "/create#use=t1&as=reference");
  });

  test("a page takes what its link hands it", () => {
    for (const one of TARGETS) {
      const hash = handoffHref(TYPE_PATHS, "abc123", one).split("#")[1];
      assert.deepEqual(handoffFromHash(`#${hash}`, one.type), {taskId: "abc123", as: one.as});
    }
  });

  test("a page refuses a slot it does not have, a missing or odd id, and no handoff at all", () => {
    assert.equal(handoffFromHash("#use=abc&as=product", "CLOTHING_CHANGE"), null);
    assert.equal(handoffFromHash("#use=abc&as=person", "WHITE_BACKGROUND"), null);
    assert.equal(handoffFromHash("#use=abc&as=shoe", "CREATE"), null);
    assert.equal(handoffFromHash("#use=&as=product", "WHITE_BACKGROUND"), null);
    assert.equal(handoffFromHash("#use=../../x&as=product", "WHITE_BACKGROUND"), null);
    assert.equal(handoffFromHash("#task=abc", "CREATE"), null);
    assert.equal(handoffFromHash("", "CREATE"), null);
  });

  test("once taken, the handoff leaves the address and anything else stays", () => {
    assert.equal(hashWithoutHandoff("#use=abc&as=product"), "");
    assert.equal(hashWithoutHandoff("#use=abc&as=product&task=x"), "#task=x");
  });

  test("the file is named after its result, with the extension of its type", () => {
    assert.equal(handoffFileName("0123456789abcdef", "image/png"), "genkeep-01234567.png");
    assert.equal(handoffFileName("0123456789abcdef", "image/jpeg"), "genkeep-01234567.jpg");
    assert.equal(handoffFileName("0123456789abcdef", "image/webp"), "genkeep-01234567.webp");
  });
});
