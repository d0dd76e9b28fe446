/** JSON value types and the defensive parsing every transport shares. */
import { JanusError, JanusErrorCode } from './JanusError.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue | undefined;
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Own-property read: request objects come from the network, so never walk the prototype. */
export function field(obj: JsonObject, key: string): JsonValue | undefined {
  return Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : undefined;
}

/**
 * Deepest bracket nesting of a JSON text, counted without parsing so a hostile
 * `[[[[...` is refused before JSON.parse or any recursive walk sees it.
 */
export function jsonNestingDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth > max) max = depth;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

/**
 * Parses one request body. Empty → 452, depth over the limit or bad JSON → 454,
 * anything but an object → 455 (janus_http / janus_websockets behaviour).
 */
export function parseRequestText(text: string, maxDepth: number): JsonObject {
  if (text.trim().length === 0) throw new JanusError(JanusErrorCode.MISSING_REQUEST, 'Missing request');
  if (jsonNestingDepth(text) > maxDepth) {
    throw new JanusError(JanusErrorCode.INVALID_JSON, `JSON error: nesting deeper than ${maxDepth} levels`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new JanusError(JanusErrorCode.INVALID_JSON, `JSON error: ${(err as Error).message}`);
  }
  if (!isJsonObject(value)) throw new JanusError(JanusErrorCode.INVALID_JSON_OBJECT, 'JSON error: not an object');
  return value;
}

/** Janus ids are positive integers that must survive a JS number (≤ 2^53 - 1). */
export function isJanusId(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}
