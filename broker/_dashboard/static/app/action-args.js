// Action call arguments from form fields. A parameter the worker described (ActionSpec's
// `signature`, docs/protocol.md §9) gets a typed input: text for `string`, a number input for
// `integer` and `number`, a checkbox for `boolean`. Any other (`json`, or an action without a
// signature) is a text field read by the rule `pierhead call` uses for `key=value`: a value
// that parses as JSON is taken as JSON (1, true, [..], "quoted"), anything else as the text
// itself. An empty field is left out, so the action's default applies. The worker then
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
 * @typedef {{name: string, kind: "string" | "integer" | "number" | "boolean" | "json",
 *   required: boolean, default: string | number | boolean | null}} FormField
 */

const KINDS = new Set(["string", "integer", "number", "boolean", "json"]);

/**
 * The form fields of an action: from its `signature` when the worker gave one, else one
 * `json` field per name in `params`.
 * @param {{params?: string[], signature?: Array<Record<string, any>>}} spec
 * @returns {FormField[]}
 */
export function formFields(spec) {
  const described = new Map((spec.signature ?? []).map((param) => [param.name, param]));
  return (spec.params ?? []).map((name) => {
    const param = described.get(name) ?? {};
    return {
      name,
      kind: KINDS.has(param.kind) ? param.kind : "json",
      required: param.required ?? true,
      default: param.default ?? null,
    };
  });
}

/**
 * The initial value of each field: a checkbox starts at its default (unchecked without one);
 * the others start empty, showing their default as a placeholder.
 * @param {FormField[]} fields
 * @returns {Record<string, string | boolean>}
 */
export function initialValues(fields) {
  /** @type {Record<string, string | boolean>} */
  const values = {};
  for (const field of fields) {
    values[field.name] = field.kind === "boolean" ? field.default === true : "";
  }
  return values;
}

/**
 * The `args` of a call from typed form values, in field order; empty text fields left out.
 * A number field whose text is not a number is sent as the text: the worker refuses it as a
 * bad call, with the parameter named.
 * @param {FormField[]} fields
 * @param {Record<string, string | boolean>} values
 * @returns {Record<string, unknown>}
 */
export function typedArguments(fields, values) {
  /** @type {Record<string, unknown>} */
  const args = {};
  for (const field of fields) {
    const value = values[field.name];
    if (field.kind === "boolean") {
      args[field.name] = value === true;
      continue;
    }
    const text = typeof value === "string" ? value : "";
    if (text.trim() === "") {
      continue;
    }
    if (field.kind === "string") {
      args[field.name] = text;
    } else if (field.kind === "integer" || field.kind === "number") {
      const number = Number(text);
      args[field.name] = Number.isFinite(number) ? number : text;
    } else {
      args[field.name] = argumentValue(text);
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
