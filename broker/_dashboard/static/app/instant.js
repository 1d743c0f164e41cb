// Times on the wire are RFC 3339 strings with microseconds and an offset, as msgspec writes
// them. Date keeps only milliseconds, so instants are compared here as exact BigInt
// microseconds since the epoch.

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/**
 * Microseconds since 1970-01-01T00:00:00Z of an RFC 3339 time (digits past the sixth are
 * dropped, as no clock of the protocol has them).
 * @param {string} text
 * @returns {bigint}
 * @throws {Error} when `text` is not an RFC 3339 time with an offset
 */
export function instantMicros(text) {
  const parts = RFC3339.exec(text);
  if (parts === null) {
    throw new Error(`not an RFC 3339 time with an offset: ${JSON.stringify(text)}`);
  }
  const [, year, month, day, hour, minute, second, fraction, , sign, offsetH, offsetM] = parts;
  const date = new Date(0);
  // setUTCFullYear, unlike Date.UTC, takes years 0-99 literally.
  date.setUTCFullYear(Number(year), Number(month) - 1, Number(day));
  date.setUTCHours(Number(hour), Number(minute), Number(second), 0);
  const micros = BigInt((fraction ?? "").padEnd(6, "0").slice(0, 6));
  let offsetMinutes = 0;
  if (sign !== undefined) {
    offsetMinutes = (Number(offsetH) * 60 + Number(offsetM)) * (sign === "-" ? -1 : 1);
  }
  return (BigInt(date.getTime()) - BigInt(offsetMinutes) * 60_000n) * 1000n + micros;
}

/**
 * Negative, zero or positive as `a` is before, at or after `b` (both RFC 3339 times).
 * @param {string} a
 * @param {string} b
 * @returns {number}
 */
export function compareInstants(a, b) {
  const difference = instantMicros(a) - instantMicros(b);
  return difference < 0n ? -1 : difference > 0n ? 1 : 0;
}
