// Action call arguments from form fields, by the rule `pierhead call` uses for `key=value`:
// a value that parses as JSON is taken as JSON (1, true, [..], "quoted"), anything else as the
// text itself; an empty field is left out, so the action's default applies. The worker then
// converts each value to its parameter's annotation (sdk/_actions.py). Pure.

/**
 * One field's value.
 * @param {string} text
 * @returns {unknown}
 */
export function argumentValue(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * The `args` of a call from the fields of a form, in parameter order; empty fields left out.
 * @param {string[]} params the action's parameter names
 * @param {Record<string, string>} fields the text of each field
 * @returns {Record<string, unknown>}
 */
export function callArguments(params, fields) {
  /** @type {Record<string, unknown>} */
  const args = {};
  for (const name of params) {
    const text = fields[name] ?? "";
    if (text.trim() !== "") {
      args[name] = argumentValue(text);
    }
  }
  return args;
}

/**
 * Why the current session may not call an action, or null when it may.
 * @param {{connected: boolean, workerOnline: boolean, roles: string[] | null}} situation
 *   connected: the page's connection is open; workerOnline: the worker that declared the
 *   action is connected; roles: the session's roles (null before the broker said them)
 * @returns {string | null}
 */
export function callRefusal({ connected, workerOnline, roles }) {
  if (!connected || roles === null) {
    return "not connected to the broker";
  }
  if (!roles.includes("operator")) {
    return "your token lacks the operator role, which calling an action needs";
  }
  if (!workerOnline) {
    return "the worker that offers it is offline";
  }
  return null;
}
