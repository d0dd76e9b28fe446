/**
 * janus_textroom.c error codes, and the field checks its requests make
 * (Janus's JANUS_VALIDATE_JSON_OBJECT and JANUS_CHECK_SECRET), with the same
 * messages. Errors travel in the reply: `{"textroom":"event", error_code,
 * error}` on the Janus API, `{"textroom":"error", ...}` on the data channel.
 */
import { safeEqual } from '../../core/auth/safeEqual.js';
import type { JsonObject, JsonValue } from '../../core/Json.js';

export const TextRoomErrorCode = {
  NO_MESSAGE: 411,
  INVALID_JSON: 412,
  MISSING_ELEMENT: 413,
  INVALID_ELEMENT: 414,
  INVALID_REQUEST: 415,
  ALREADY_SETUP: 416,
  NO_SUCH_ROOM: 417,
  ROOM_EXISTS: 418,
  UNAUTHORIZED: 419,
  USERNAME_EXISTS: 420,
  ALREADY_IN_ROOM: 421,
  NOT_IN_ROOM: 422,
  NO_SUCH_USER: 423,
  UNKNOWN_ERROR: 499,
} as const;

export type TextRoomErrorCodeValue = (typeof TextRoomErrorCode)[keyof typeof TextRoomErrorCode];

export class TextRoomError extends Error {
  constructor(readonly code: TextRoomErrorCodeValue, message: string) {
    super(message);
    this.name = 'TextRoomError';
  }
}

export const noSuchRoom = (room: number): TextRoomError => new TextRoomError(TextRoomErrorCode.NO_SUCH_ROOM, `No such room (${room})`);

/** The kinds of member Janus checks: a "positive" integer is one >= 0, as in Janus. */
export type ParamKind = 'string' | 'integer' | 'positive' | 'boolean' | 'array';

export interface Param {
  name: string;
  kind: ParamKind;
  required?: boolean;
}

const KIND_NAMES: Record<ParamKind, string> = {
  string: 'a string',
  integer: 'an integer',
  positive: 'a positive integer',
  boolean: 'a boolean',
  array: 'an array',
};

function hasKind(value: JsonValue, kind: ParamKind): boolean {
  switch (kind) {
    case 'string':
      return typeof value === 'string';
    case 'integer':
      return typeof value === 'number' && Number.isSafeInteger(value);
    case 'positive':
      return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
    case 'boolean':
      return typeof value === 'boolean';
    case 'array':
      return Array.isArray(value);
  }
}

/** Janus's order: each listed member in turn, missing before wrong type. */
export function validate(body: JsonObject, params: readonly Param[]): void {
  for (const p of params) {
    const value = body[p.name];
    if (value === undefined || value === null) {
      if (p.required) throw new TextRoomError(TextRoomErrorCode.MISSING_ELEMENT, `Missing element (${p.name})`);
      continue;
    }
    if (!hasKind(value, p.kind)) throw new TextRoomError(TextRoomErrorCode.INVALID_ELEMENT, `Invalid element type (${p.name} should be ${KIND_NAMES[p.kind]})`);
  }
}

/** JANUS_CHECK_SECRET: when the room has one, the request must carry it (compared in constant time). */
export function checkSecret(expected: string | undefined, body: JsonObject, member: 'secret' | 'pin' | 'admin_key'): void {
  if (expected === undefined) return;
  const given = body[member];
  if (given === undefined || given === null) throw new TextRoomError(TextRoomErrorCode.MISSING_ELEMENT, `Missing element (${member})`);
  if (typeof given !== 'string') throw new TextRoomError(TextRoomErrorCode.INVALID_ELEMENT, `Invalid element type (${member} should be a string)`);
  if (!safeEqual(given, expected)) throw new TextRoomError(TextRoomErrorCode.UNAUTHORIZED, `Unauthorized (wrong ${member})`);
}

/** A list of strings (allowed tokens, whisper recipients), or the error Janus gives for it. */
export function strings(value: JsonValue | undefined, what: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new TextRoomError(TextRoomErrorCode.INVALID_ELEMENT, what);
  return value as string[];
}
