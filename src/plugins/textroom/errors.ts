/**
 * janus_textroom.c error codes, and the field checks its requests make
 * (Janus's JANUS_VALIDATE_JSON_OBJECT and JANUS_CHECK_SECRET), with the same
 * messages. Errors travel in the reply: `{"textroom":"event", error_code,
 * error}` on the Janus API, `{"textroom":"error", ...}` on the data channel.
 */
import type { JsonObject, JsonValue } from '../../core/Json.js';
import { checkSecret as checkSecretWith, validateTable, type SecretErrors, type Table } from '../../core/RequestTable.js';

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

const missing = (name: string): TextRoomError => new TextRoomError(TextRoomErrorCode.MISSING_ELEMENT, `Missing element (${name})`);
const invalid = (name: string, should: string): TextRoomError =>
  new TextRoomError(TextRoomErrorCode.INVALID_ELEMENT, `Invalid element type (${name} should be ${should})`);
const secretErrors: SecretErrors = {
  missing,
  invalid,
  unauthorized: (member) => new TextRoomError(TextRoomErrorCode.UNAUTHORIZED, `Unauthorized (wrong ${member})`),
};

/** Janus's order: each listed member in turn, missing (413) before wrong type (414). */
export const validate = (body: JsonObject, table: Table): void => validateTable(body, table, { missing, invalid });

/** JANUS_CHECK_SECRET with the TextRoom's codes: missing → 413, not a string → 414, wrong → 419. */
export const checkSecret = (expected: string | undefined, body: JsonObject, member: 'secret' | 'pin' | 'admin_key'): void =>
  checkSecretWith(expected, body, member, secretErrors);

/** A list of strings (allowed tokens, whisper recipients), or the error Janus gives for it. */
export function strings(value: JsonValue | undefined, what: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new TextRoomError(TextRoomErrorCode.INVALID_ELEMENT, what);
  return value as string[];
}
