// Reading the fields of a Janus request: a missing mandatory one is 456, a wrongly typed one 467,
// as janus.c's JANUS_VALIDATE_JSON_OBJECT answers them. One copy for the client and Admin APIs.
import { JanusError, JanusErrorCode } from './JanusError.js';
import { field, type JsonObject } from './Json.js';

function missing(key: string): JanusError {
  return new JanusError(JanusErrorCode.MISSING_MANDATORY_ELEMENT, `Missing mandatory element (${key})`);
}

/** A mandatory string field; with `nonEmpty`, an empty string is wrongly typed too. */
export function requireString(obj: JsonObject, key: string, options: { nonEmpty?: boolean } = {}): string {
  const value = field(obj, key);
  if (value === undefined || value === null) throw missing(key);
  if (typeof value !== 'string' || (options.nonEmpty && value.length === 0)) {
    throw new JanusError(JanusErrorCode.INVALID_ELEMENT_TYPE, `Invalid element type (${key} should be a ${options.nonEmpty ? 'non-empty ' : ''}string)`);
  }
  return value;
}

/** An optional string field (absent or null: null). */
export function optionalString(obj: JsonObject, key: string): string | null {
  const value = field(obj, key);
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') throw new JanusError(JanusErrorCode.INVALID_ELEMENT_TYPE, `Invalid element type (${key} should be a string)`);
  return value;
}

/** A mandatory integer field within [min, max]. */
export function requireInteger(obj: JsonObject, key: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = field(obj, key);
  if (value === undefined || value === null) throw missing(key);
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new JanusError(JanusErrorCode.INVALID_ELEMENT_TYPE, `Invalid element type (${key} should be an integer between ${min} and ${max})`);
  }
  return value;
}
