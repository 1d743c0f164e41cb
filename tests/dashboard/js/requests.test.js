// The connection's pure parts: request bookkeeping (ids, replies, timeouts, drops) and what a
// close code means (retry or not, the message, whether to ask for a token).

import { closeOutcome } from "/app/closes.js";
import { MAX_REQUEST_ID, PendingRequests } from "/app/requests.js";
import { firstDifference } from "./compare.js";

export async function run() {
  return [
    await repliesSettleTheirOwnRequest(),
    await anErrorReplyRejectsWithTheBrokersCode(),
    await aDropFailsWhatWasSentAndKeepsWhatWasNot(),
    await anExpiredRequestIgnoresItsLateReply(),
    idsWrapAndSkipThoseInUse(),
    closesThatEndForGood(),
    closesThatReconnect(),
  ];
}

/** @param {string} name @param {unknown} actual @param {unknown} expected */
function check(name, actual, expected) {
  const difference = firstDifference(actual, expected);
  return { name, ok: difference === null, detail: difference ?? "" };
}

/** A request added to `pending`, and a promise of how it ended. */
function track(pending, frame) {
  let sent;
  const outcome = new Promise((resolve) => {
    sent = pending.add(
      frame,
      (reply) => resolve({ reply: reply.type }),
      (error) => resolve({ error: error.code }),
    );
  });
  return { sent, outcome };
}

async function repliesSettleTheirOwnRequest() {
  const pending = new PendingRequests();
  const first = track(pending, { type: "list" });
  const second = track(pending, { type: "stats" });
  const unrelated = pending.settle({ type: "events", sub: 1, events: [] });
  const answered = pending.settle({ type: "stats", id: second.sent.id });
  const twice = pending.settle({ type: "stats", id: second.sent.id });
  pending.settle({ type: "workspaces", id: first.sent.id, items: [] });
  return check(
    "a reply settles the request with its id, once",
    [first.sent.id, second.sent.id, unrelated, answered, twice, await first.outcome, await second.outcome],
    [1, 2, false, true, false, { reply: "workspaces" }, { reply: "stats" }],
  );
}

async function anErrorReplyRejectsWithTheBrokersCode() {
  const pending = new PendingRequests();
  const request = track(pending, { type: "catch", workspace: "w" });
  pending.settle({ type: "error", id: request.sent.id, code: "forbidden", message: "no" });
  return check("an error reply rejects with the broker's code", await request.outcome, {
    error: "forbidden",
  });
}

async function aDropFailsWhatWasSentAndKeepsWhatWasNot() {
  const pending = new PendingRequests();
  const sent = track(pending, { type: "release", workspace: "w" });
  const waiting = track(pending, { type: "list" });
  pending.markSent(sent.sent.id);
  const failed = pending.dropSent();
  const unsent = pending.unsent().map((frame) => frame.id);
  pending.settle({ type: "workspaces", id: waiting.sent.id, items: [] });
  return check(
    "a drop fails the requests sent and keeps those not sent yet",
    [failed, unsent, await sent.outcome, await waiting.outcome],
    [[sent.sent.id], [waiting.sent.id], { error: "connection_lost" }, { reply: "workspaces" }],
  );
}

async function anExpiredRequestIgnoresItsLateReply() {
  const pending = new PendingRequests();
  const request = track(pending, { type: "history", workspace: "w" });
  pending.markSent(request.sent.id);
  pending.expire(request.sent.id);
  const late = pending.settle({ type: "history_page", id: request.sent.id, events: [], more: false });
  return check("a request past its time fails with timeout; its late reply is dropped", [await request.outcome, late], [{ error: "timeout" }, false]);
}

function idsWrapAndSkipThoseInUse() {
  const pending = new PendingRequests();
  pending.lastId = MAX_REQUEST_ID - 1;
  const ids = [];
  ids.push(pending.add({ type: "list" }, () => {}, () => {}).id);
  ids.push(pending.add({ type: "list" }, () => {}, () => {}).id);
  pending.lastId = MAX_REQUEST_ID;
  ids.push(pending.add({ type: "list" }, () => {}, () => {}).id);
  const frame = { type: "list" };
  const copy = pending.add(frame, () => {}, () => {});
  return check(
    "ids stay within 2^53-1, wrap to 1 and skip ids in use; the caller's frame is left alone",
    [ids, copy.id, "id" in frame],
    [[MAX_REQUEST_ID, 1, 2], 3, false],
  );
}

function closesThatEndForGood() {
  const outcomes = [
    closeOutcome(4001, "", { code: "unauthorized", message: "token revoked" }),
    closeOutcome(4003, "", null),
    closeOutcome(4009, ""),
    closeOutcome(4000, "", { code: "bad_frame", message: "bad hello" }),
  ].map((outcome) => [outcome.final, outcome.needsToken, outcome.message]);
  return check("4001, 4003, 4009 and 4000 end the session with a message", outcomes, [
    [true, true, "the broker needs a valid token (4001); enter one to sign in: token revoked"],
    [true, false, "this token may not open a dashboard session (4003); sign in with another token"],
    [true, false, "a newer connection took this session over (4009); reload the page to reconnect"],
    [true, false, "the broker refused this page's protocol (4000); reload the page: bad hello"],
  ]);
}

function closesThatReconnect() {
  const outcomes = [1000, 1001, 1006, 1011, 1012, 1013, 4008, 4029, 4999].map((code) => {
    const outcome = closeOutcome(code, code === 4999 ? "odd" : "");
    return [outcome.final, outcome.needsToken, outcome.message];
  });
  return check("drops, drains, unreachable nodes, slow consumers and rate limits reconnect", outcomes, [
    [false, false, "the broker closed the connection"],
    [false, false, "the broker is restarting"],
    [false, false, "the connection to the broker was lost"],
    [false, false, "the broker had an internal error (1011)"],
    [false, false, "the broker node behind this connection went away (1012); reconnecting"],
    [
      false,
      false,
      "the broker cannot reach its store or another node right now (1013); trying again",
    ],
    [false, false, "the page fell behind the stream (4008); resuming"],
    [false, false, "too many attempts (4029); backing off"],
    [false, false, "the connection closed (4999: odd)"],
  ]);
}
