/**
 * Validation tables for every Streaming request, as janus_streaming.c's
 * JANUS_VALIDATE_JSON_OBJECT tables: each field has a type, some are
 * required. A missing required field is 453, a wrong type or range 454;
 * nothing changes before the whole body passed.
 */
import type { JsonObject } from '../../core/Json.js';
import { validateTable, type FieldSpec, type Table } from '../../core/RequestTable.js';
import { invalid, missing } from './errors.js';

export { objects, optBool, optNumber, optString, type Table } from '../../core/RequestTable.js';

/** Answered at once (Janus `success` with plugindata); also valid through Admin `message_plugin`. */
export const SYNC_REQUESTS: ReadonlySet<string> = new Set(['list', 'info', 'create', 'edit', 'destroy', 'enable', 'disable', 'kick_all', 'recording']);

/** Acknowledged first, answered with an event (a viewer's requests). */
export const ASYNC_REQUESTS: ReadonlySet<string> = new Set(['watch', 'start', 'pause', 'configure', 'switch', 'stop']);

/** Checks `body` against `table`; throws 453/454 naming the field (with `prefix` for nested objects). */
export function validate(body: JsonObject, table: Table, prefix = ''): void {
  validateTable(body, table, { missing, invalid }, prefix);
}

const str: FieldSpec = { kind: 'string' };
const bool: FieldSpec = { kind: 'boolean' };
const uint: FieldSpec = { kind: 'integer', min: 0 };
const port: FieldSpec = { kind: 'port' };
const layer: FieldSpec = { kind: 'integer', min: 0, max: 2 };
const requiredId: FieldSpec = { kind: 'id', required: true };

export const REQUEST: Table = { request: { kind: 'string', required: true } };
export const LIST: Table = { admin_key: str };
export const INFO: Table = { id: requiredId, secret: str };
export const CREATE: Table = {
  admin_key: str, type: { kind: 'string', required: true }, id: { kind: 'id' }, name: str, description: str, metadata: str, is_private: bool,
  secret: str, pin: str, media: { kind: 'object-array' }, permanent: bool, collision: uint, threads: uint, srtpsuite: uint, srtpcrypto: str,
  e2ee: bool, playoutdelay_ext: bool,
  // Deprecated one-audio-one-video form (audioport, videoport…), still accepted by Janus 1.x.
  audio: bool, video: bool, data: bool,
};
/** One entry of `media` (rtp mountpoints). */
export const RTP_MEDIA: Table = {
  type: { kind: 'string', required: true }, mid: { kind: 'string', required: true }, label: str, msid: str, mcast: str, iface: str,
  port, rtcpport: port, pt: uint, codec: str, rtpmap: str, fmtp: str, skew: bool, bufferkf: bool, simulcast: bool, port2: port, port3: port, svc: bool,
  buffermsg: bool,
};
export const LEGACY_AUDIO: Table = {
  audioport: { kind: 'port', required: true }, audiortcpport: port, audiopt: { kind: 'integer', min: 0, required: true }, audiocodec: str, audiortpmap: str, audiofmtp: str,
  audiomcast: str, audioiface: str, audioskew: bool,
};
export const LEGACY_VIDEO: Table = {
  videoport: { kind: 'port', required: true }, videortcpport: port, videopt: { kind: 'integer', min: 0, required: true }, videocodec: str, videortpmap: str, videofmtp: str,
  videomcast: str, videoiface: str, videobufferkf: bool, videosimulcast: bool, videoport2: port, videoport3: port, videoskew: bool, videosvc: bool, h264sps: str,
};
export const EDIT: Table = {
  id: requiredId, secret: str, new_description: str, new_metadata: str, new_secret: str, new_pin: str, new_is_private: bool, permanent: bool, edited_event: bool,
};
export const DESTROY: Table = { id: requiredId, secret: str, permanent: bool };
export const ENABLE: Table = { id: requiredId, secret: str };
export const DISABLE: Table = { id: requiredId, secret: str, stop_recording: bool };
export const KICK_ALL: Table = { id: requiredId, secret: str };
export const RECORDING: Table = { id: requiredId, action: { kind: 'string', required: true }, secret: str, media: { kind: 'array' } };

export const WATCH: Table = { id: requiredId, pin: str, media: { kind: 'array' }, restart: bool, offer_audio: bool, offer_video: bool, offer_data: bool };
export const CONFIGURE: Table = {
  mid: str, send: bool, substream: layer, temporal: layer, fallback: uint, spatial_layer: layer, temporal_layer: layer,
  min_delay: uint, max_delay: uint,
  // Deprecated: Janus reads them as strings ("true"/"false") or booleans.
  audio: bool, video: bool, data: bool,
};
export const SWITCH: Table = { id: requiredId };

