/**
 * janus_streaming.c error codes. Like every Janus plugin's, they travel inside
 * plugindata (`{"streaming":"event","error_code":N,"error":"..."}`): a failed
 * synchronous request is still a Janus `success`.
 */
import { PluginError } from '../../core/PluginError.js';
import type { Logger } from 'pino';
import { safeEqual } from '../../core/auth/safeEqual.js';
import { field, type JsonObject } from '../../core/Json.js';
import { checkSecret as checkSecretWith, type SecretErrors } from '../../core/RequestTable.js';

export const StreamingErrorCode = {
  NO_MESSAGE: 450,
  INVALID_JSON: 451,
  INVALID_REQUEST: 452,
  MISSING_ELEMENT: 453,
  INVALID_ELEMENT: 454,
  NO_SUCH_MOUNTPOINT: 455,
  CANT_CREATE: 456,
  UNAUTHORIZED: 457,
  CANT_SWITCH: 458,
  CANT_RECORD: 459,
  INVALID_STATE: 460,
  INVALID_SDP: 461,
  UNKNOWN_ERROR: 470,
} as const;

export type StreamingErrorCodeValue = (typeof StreamingErrorCode)[keyof typeof StreamingErrorCode];

/** Thrown by request handlers; the dispatcher turns it into the plugindata error shape. */
export class StreamingError extends PluginError<StreamingErrorCodeValue> {}

export const noSuchMountpoint = (id: number): StreamingError => new StreamingError(StreamingErrorCode.NO_SUCH_MOUNTPOINT, `No such mountpoint/stream ${id}`);
export const missing = (name: string): StreamingError => new StreamingError(StreamingErrorCode.MISSING_ELEMENT, `Missing element (${name})`);
export const invalid = (name: string, should: string): StreamingError =>
  new StreamingError(StreamingErrorCode.INVALID_ELEMENT, `Invalid element type (${name} should be ${should})`);

/** Turns any failure into the plugindata error shape; unexpected ones are 470 and logged. */
export function errorData(err: unknown, logger: Logger): JsonObject {
  if (err instanceof StreamingError) return { streaming: 'event', error_code: err.code, error: err.message };
  logger.error({ err }, 'streaming: request failed');
  return { streaming: 'event', error_code: StreamingErrorCode.UNKNOWN_ERROR, error: err instanceof Error ? err.message : String(err) };
}

const secretErrors: SecretErrors = {
  missing,
  invalid,
  unauthorized: (member) => new StreamingError(StreamingErrorCode.UNAUTHORIZED, `Unauthorized (wrong ${member})`),
};
/** JANUS_CHECK_SECRET with the Streaming plugin's codes: missing → 453, not a string → 454, wrong → 457. */
export const checkSecret = (expected: string | undefined, body: JsonObject, member: string): void => checkSecretWith(expected, body, member, secretErrors);

/** Whether `body[member]` is the right secret (no secret configured counts as right); never throws. */
export function holdsSecret(expected: string | undefined, body: JsonObject, member: string): boolean {
  if (expected === undefined) return true;
  const given = field(body, member);
  return typeof given === 'string' && safeEqual(given, expected);
}
