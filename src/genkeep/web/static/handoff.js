// "Use as …": one finished result taken into the next generation, with no DOM (tests/js/handoff.test.mjs).
//
// The link to the next page carries only the task id and the slot, in the hash: /white-background#use=<id>&as=
// product. That page asks the API for the task, fetches its image with the owner's own cookie and puts it in the
// slot exactly as if the file had been chosen: the same preview before upload, the same checks in the page, the
// same validation on the server when the form is sent. So the API gains nothing, there is nothing new to secure
// (someone else's task id answers 404, like any other request for it), and the link works in a new tab too.

import {plainId} from "./viewer-state.js";

/** Where a result can go next: the slot of the page that takes it. */
export const TARGETS = [
  {as: "product", type: "WHITE_BACKGROUND"},
  {as: "person", type: "CLOTHING_CHANGE"},
  {as: "garment", type: "CLOTHING_CHANGE"},
  {as: "reference", type: "CREATE"},
];

const params = (hash) => new URLSearchParams(String(hash ?? "").replace(/^#/, ""));

/** The link that opens `target`'s page with task `id`'s image in its slot. */
export function handoffHref(typePaths, id, target) {
  return `${typePaths[target.type]}#${new URLSearchParams({use: id, as: target.as})}`;
}

/** What the hash hands to a page of `type`: {taskId, as}, or null when it hands nothing this page can take. */
export function handoffFromHash(hash, type) {
  const found = params(hash);
  const taskId = plainId(found.get("use"));
  const target = TARGETS.find((one) => one.as === found.get("as") && one.type === type);
  return taskId && target ? {taskId, as: target.as} : null;
}

/** The hash once the handoff is taken, so a reload does not take it again. "" when nothing is left. */
export function hashWithoutHandoff(hash) {
  const found = params(hash);
  found.delete("use");
  found.delete("as");
  const text = found.toString();
  return text ? `#${text}` : "";
}

/** A name for the image's file in the form: what it is and which result it came from. */
export function handoffFileName(taskId, contentType) {
  const extension = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}[contentType] ?? "img";
  return `genkeep-${taskId.slice(0, 8)}.${extension}`;
}
