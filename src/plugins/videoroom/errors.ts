/**
 * janus_videoroom.c error codes. They travel inside plugindata
 * (`{"videoroom":"event","error_code":N,"error":"..."}`), never as core errors:
 * a failed synchronous request is still a Janus `success`.
 */
export const VideoRoomErrorCode = {
  UNKNOWN_ERROR: 499,
  NO_MESSAGE: 421,
  INVALID_JSON: 422,
  INVALID_REQUEST: 423,
  JOIN_FIRST: 424,
  ALREADY_JOINED: 425,
  NO_SUCH_ROOM: 426,
  ROOM_EXISTS: 427,
  NO_SUCH_FEED: 428,
  MISSING_ELEMENT: 429,
  INVALID_ELEMENT: 430,
  INVALID_SDP_TYPE: 431,
  PUBLISHERS_FULL: 432,
  UNAUTHORIZED: 433,
  ALREADY_PUBLISHED: 434,
  NOT_PUBLISHED: 435,
  ID_EXISTS: 436,
  INVALID_SDP: 437,
  INVALID_FEED: 438,
} as const;

export type VideoRoomErrorCodeValue = (typeof VideoRoomErrorCode)[keyof typeof VideoRoomErrorCode];

import { PluginError } from '../../core/PluginError.js';
import type { Logger } from 'pino';
import type { JsonObject } from '../../core/Json.js';
import { checkSecret as checkSecretWith, type SecretErrors } from '../../core/RequestTable.js';

/** Thrown by request handlers; the dispatcher turns it into the plugindata error shape. */
export class VideoRoomError extends PluginError<VideoRoomErrorCodeValue> {}

export const noSuchRoom = (room: number): VideoRoomError => new VideoRoomError(VideoRoomErrorCode.NO_SUCH_ROOM, `No such room (${room})`);
export const noSuchFeed = (feed: number): VideoRoomError => new VideoRoomError(VideoRoomErrorCode.NO_SUCH_FEED, `No such feed (${feed})`);
export const missing = (name: string): VideoRoomError => new VideoRoomError(VideoRoomErrorCode.MISSING_ELEMENT, `Missing element (${name})`);
export const invalid = (name: string, should: string): VideoRoomError =>
  new VideoRoomError(VideoRoomErrorCode.INVALID_ELEMENT, `Invalid element type (${name} should be ${should})`);
const secretErrors: SecretErrors = {
  missing,
  invalid,
  unauthorized: (member) => new VideoRoomError(VideoRoomErrorCode.UNAUTHORIZED, `Unauthorized (wrong ${member})`),
};
/** JANUS_CHECK_SECRET with the VideoRoom's codes: missing → 429, not a string → 430, wrong → 433. */
export const checkSecret = (expected: string | undefined, body: JsonObject, member: string): void => checkSecretWith(expected, body, member, secretErrors);

/** Turns any failure into the plugindata error shape; unexpected ones are 499 and logged. */
export function errorData(err: unknown, logger: Logger): JsonObject {
  if (err instanceof VideoRoomError) return { videoroom: 'event', error_code: err.code, error: err.message };
  logger.error({ err }, 'videoroom: request failed');
  return { videoroom: 'event', error_code: VideoRoomErrorCode.UNKNOWN_ERROR, error: err instanceof Error ? err.message : String(err) };
}

/** `record: true` where the gateway has no recorder (a media set-up without the native engine). */
export function checkRecorderAvailable(record: boolean | undefined, available: boolean): void {
  if (record === true && !available) throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, 'Recording is not available in this build');
}
