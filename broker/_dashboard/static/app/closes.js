// What a closed session means for the page (docs/protocol.md §13): whether to try again, and
// what to tell the person looking at it. Pure: the connection feeds it the close code, the
// close reason and the error frame the broker sent just before, if any.

/**
 * @typedef {{final: boolean, needsToken: boolean, message: string}} CloseOutcome
 *   `final`: do not reconnect (retrying cannot help); `needsToken`: ask for a token.
 */

const RETRY = { final: false, needsToken: false };
const FINAL = { final: true, needsToken: false };

/** @type {Record<number, {final: boolean, needsToken: boolean, text: string}>} */
const BY_CODE = {
  1000: { ...RETRY, text: "the broker closed the connection" },
  1001: { ...RETRY, text: "the broker is restarting" },
  1006: { ...RETRY, text: "the connection to the broker was lost" },
  1009: { ...RETRY, text: "a frame was too large for the broker (1009)" },
  1011: { ...RETRY, text: "the broker had an internal error (1011)" },
  1012: { ...RETRY, text: "the broker node behind this connection went away (1012); reconnecting" },
  1013: {
    ...RETRY,
    text: "the broker cannot reach its store or another node right now (1013); trying again",
  },
  4000: { ...FINAL, text: "the broker refused this page's protocol (4000); reload the page" },
  4001: {
    final: true,
    needsToken: true,
    text: "the broker needs a valid token (4001); enter one to sign in",
  },
  4003: {
    ...FINAL,
    text: "this token may not open a dashboard session (4003); sign in with another token",
  },
  4008: { ...RETRY, text: "the page fell behind the stream (4008); resuming" },
  4009: {
    ...FINAL,
    text: "a newer connection took this session over (4009); reload the page to reconnect",
  },
  4029: { ...RETRY, text: "too many attempts (4029); backing off" },
};

/**
 * @param {number} code the websocket close code (1006 when the socket just dropped)
 * @param {string} [reason] the close frame's reason text
 * @param {{code?: string, message?: string} | null} [error] the `error` frame without an `id`
 *   that the broker sent just before closing, if any
 * @returns {CloseOutcome}
 */
export function closeOutcome(code, reason = "", error = null) {
  const known = BY_CODE[code] ?? {
    ...RETRY,
    text: `the connection closed (${code}${reason ? `: ${reason}` : ""})`,
  };
  const said = error?.message || reason;
  const message = said && known.final ? `${known.text}: ${said}` : known.text;
  return { final: known.final, needsToken: known.needsToken, message };
}
