/**
 * Validation tables for plugin requests, as Janus's plugins check a body with
 * JANUS_VALIDATE_JSON_OBJECT (utils.h): each field has a kind, some are
 * required; a missing required field and a wrong type or range are each the
 * plugin's own error code, so each plugin passes the two errors it throws.
 * Nothing is changed before the whole body passed. Also the readers of fields
 * a table has already checked.
 */
import { safeEqual } from './auth/safeEqual.js';
import { field, isJsonObject, type JsonObject, type JsonValue } from './Json.js';

export type FieldKind = 'string' | 'boolean' | 'integer' | 'positive' | 'id' | 'port' | 'object' | 'array' | 'string-array' | 'object-array' | 'string-map' | 'any';

export interface FieldSpec {
  kind: FieldKind;
  required?: boolean;
  /** Bounds of an `integer`. */
  min?: number;
  max?: number;
  /** Allowed values of a `string`. */
  oneOf?: readonly string[];
}

export type Table = Readonly<Record<string, FieldSpec>>;

/** The plugin's two validation errors (VideoRoom 429/430, Streaming 453/454, SIP 443/444 …). */
export interface ValidationErrors {
  missing(name: string): Error;
  invalid(name: string, should: string): Error;
}

function fits(spec: FieldSpec, value: JsonValue): boolean {
  switch (spec.kind) {
    case 'string': return typeof value === 'string' && (!spec.oneOf || spec.oneOf.includes(value));
    case 'boolean': return typeof value === 'boolean';
    case 'integer':
      return typeof value === 'number' && Number.isSafeInteger(value) && (spec.min === undefined || value >= spec.min) && (spec.max === undefined || value <= spec.max);
    // Janus's JANUS_JSON_POSITIVE: zero included, named "a positive integer" all the same.
    case 'positive': return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
    case 'id': return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
    case 'port': return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 65535;
    case 'object': return isJsonObject(value);
    case 'array': return Array.isArray(value);
    case 'string-array': return Array.isArray(value) && value.every((v) => typeof v === 'string');
    case 'object-array': return Array.isArray(value) && value.every((v) => isJsonObject(v));
    case 'string-map': return isJsonObject(value) && Object.values(value).every((v) => typeof v === 'string' || typeof v === 'number');
    case 'any': return true;
  }
}

const SHOULD: Record<FieldKind, string> = {
  string: 'a string',
  boolean: 'a boolean',
  integer: 'an integer',
  positive: 'a positive integer',
  id: 'a positive integer',
  port: 'an integer between 0 and 65535',
  object: 'an object',
  array: 'an array',
  'string-array': 'an array of strings',
  'object-array': 'an array of objects',
  'string-map': 'an object of header names to string values',
  any: 'anything',
};

function should(spec: FieldSpec): string {
  if (spec.kind === 'string' && spec.oneOf) return `one of ${spec.oneOf.join(', ')}`;
  if (spec.kind === 'integer' && spec.min !== undefined && spec.max !== undefined) return `an integer between ${spec.min} and ${spec.max}`;
  if (spec.kind === 'integer' && spec.min !== undefined) return spec.min === 0 ? 'a non-negative integer' : `an integer >= ${spec.min}`;
  return SHOULD[spec.kind];
}

/** A plugin's errors for JANUS_CHECK_SECRET: its two validation errors and its "wrong secret" (VideoRoom 433, Streaming 457, TextRoom 419). */
export interface SecretErrors extends ValidationErrors {
  unauthorized(member: string): Error;
}

/**
 * Janus's JANUS_CHECK_SECRET: when the room or mountpoint has the secret (or
 * PIN, or the plugin an admin_key), the request must carry it: missing, not a
 * string and wrong are each the plugin's error. Compared in constant time.
 */
export function checkSecret(expected: string | undefined, body: JsonObject, member: string, errors: SecretErrors): void {
  if (expected === undefined) return;
  const given = field(body, member);
  if (given === undefined || given === null) throw errors.missing(member);
  if (typeof given !== 'string') throw errors.invalid(member, 'a string');
  if (!safeEqual(given, expected)) throw errors.unauthorized(member);
}

/** Checks `body` against `table`, throwing the plugin's error naming the field (after `prefix` for nested objects). */
export function validateTable(body: JsonObject, table: Table, errors: ValidationErrors, prefix = ''): void {
  for (const [name, spec] of Object.entries(table)) {
    const value = field(body, name);
    if (value === undefined || value === null) {
      if (spec.required) throw errors.missing(prefix + name);
      continue;
    }
    if (!fits(spec, value)) throw errors.invalid(prefix + name, should(spec));
  }
}

/** Reads a field a table has checked. */
export function optString(body: JsonObject, name: string): string | undefined {
  const v = field(body, name);
  return typeof v === 'string' ? v : undefined;
}
export function optNumber(body: JsonObject, name: string): number | undefined {
  const v = field(body, name);
  return typeof v === 'number' ? v : undefined;
}
export function optBool(body: JsonObject, name: string): boolean | undefined {
  const v = field(body, name);
  return typeof v === 'boolean' ? v : undefined;
}
export function objects(body: JsonObject, name: string): JsonObject[] {
  const v = field(body, name);
  return Array.isArray(v) ? v.filter(isJsonObject) : [];
}

/**
 * Sets on `target` the members of `fields` that are not undefined: how a request's optional
 * fields reach an options object when absent must stay absent (exactOptionalPropertyTypes).
 */
export function assignDefined<T extends object>(target: T, fields: { [K in keyof T]?: T[K] | undefined }): T {
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) (target as Record<string, unknown>)[k] = v;
  return target;
}
