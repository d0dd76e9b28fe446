/**
 * Validation tables for every VideoRoom request, in the manner of Janus's
 * JANUS_VALIDATE_JSON_OBJECT: each field has a type, some are required.
 * A missing required field is 429, a wrong type or range is 430; nothing is
 * changed before the whole body passed.
 */
import type { JsonObject } from '../../core/Json.js';
import { validateTable, type FieldSpec, type Table } from '../../core/RequestTable.js';
import { invalid, missing } from './errors.js';

export { objects, optBool, optNumber, optString, type FieldSpec, type Table } from '../../core/RequestTable.js';

/**
 * Requests acknowledged first and answered with an event (VideoRoomHandle); the synchronous
 * ones are the table in syncRequests.ts.
 */
export const ASYNC_REQUESTS: ReadonlySet<string> = new Set([
  'join', 'joinandconfigure', 'configure', 'publish', 'unpublish', 'start', 'pause', 'switch', 'subscribe', 'unsubscribe', 'update', 'leave',
]);

/** Checks `body` against `table`; throws 429/430 naming the field (with `prefix` for nested objects). */
export function validate(body: JsonObject, table: Table, prefix = ''): void {
  validateTable(body, table, { missing, invalid }, prefix);
}

const str = (required = false): FieldSpec => ({ kind: 'string', required });
const bool: FieldSpec = { kind: 'boolean' };
const id = (required = false): FieldSpec => ({ kind: 'id', required });
const uint: FieldSpec = { kind: 'integer', min: 0 };
const layer: FieldSpec = { kind: 'integer', min: 0, max: 2 };

export const REQUEST: Table = { request: str(true) };

/** Room options shared by `create` (and what a permanent room file stores). */
export const CREATE: Table = {
  room: id(), permanent: bool, description: str(), secret: str(), pin: str(), is_private: bool, allowed: { kind: 'string-array' },
  require_pvtid: bool, signed_tokens: bool, bitrate: uint, bitrate_cap: bool, fir_freq: uint, publishers: { kind: 'integer', min: 1 },
  audiocodec: str(), videocodec: str(), vp9_profile: str(), h264_profile: str(), opus_fec: bool, opus_dtx: bool,
  audiolevel_ext: bool, audiolevel_event: bool, audio_active_packets: { kind: 'integer', min: 1 }, audio_level_average: { kind: 'integer', min: 0, max: 127 },
  videoorient_ext: bool, playoutdelay_ext: bool, transport_wide_cc_ext: bool, record: bool, rec_dir: str(), lock_record: bool,
  notify_joining: bool, require_e2ee: bool, dummy_publisher: bool, dummy_streams: { kind: 'array' }, threads: uint, admin_key: str(),
};

export const EDIT: Table = {
  room: id(true), secret: str(), new_description: str(), new_secret: str(), new_pin: str(), new_is_private: bool, new_require_pvtid: bool,
  new_bitrate: uint, new_fir_freq: uint, new_publishers: { kind: 'integer', min: 1 }, new_lock_record: bool, new_rec_dir: str(), permanent: bool,
};

export const ROOM_SECRET: Table = { room: id(true), secret: str(), permanent: bool };
export const EXISTS: Table = { room: id(true) };
export const LIST: Table = { admin_key: str() };
export const ALLOWED: Table = { room: id(true), secret: str(), action: str(true), allowed: { kind: 'string-array' }, permanent: bool };
export const KICK: Table = { room: id(true), secret: str(), id: id(true) };
export const MODERATE: Table = { room: id(true), secret: str(), id: id(true), mid: str(true), mute: { kind: 'boolean', required: true } };
export const LISTPARTICIPANTS: Table = { room: id(true) };
export const ENABLE_RECORDING: Table = { room: id(true), secret: str(), record: { kind: 'boolean', required: true } };

export const JOIN: Table = { room: id(true), ptype: str(true) };
export const PUBLISHER_JOIN: Table = { id: id(), display: str(), token: str(), metadata: { kind: 'any' }, pin: str() };
export const PUBLISH: Table = {
  audiocodec: str(), videocodec: str(), bitrate: uint, record: bool, filename: str(), display: str(), metadata: { kind: 'any' },
  audio_level_average: { kind: 'integer', min: 0, max: 127 }, audio_active_packets: { kind: 'integer', min: 1 }, descriptions: { kind: 'object-array' },
  keyframe: bool, streams: { kind: 'object-array' }, update: bool, restart: bool,
  // Deprecated 0.x fields, accepted as Janus 1.x still does.
  audio: bool, video: bool, data: bool,
};
export const DESCRIPTION: Table = { mid: str(true), description: str(true) };
export const PUBLISHER_STREAM_CONFIGURE: Table = { mid: str(true), keyframe: bool, send: bool, min_delay: uint, max_delay: uint };

export const SUBSCRIBER_JOIN: Table = {
  use_msid: bool, autoupdate: bool, private_id: { kind: 'integer', min: 0 }, streams: { kind: 'object-array' }, pin: str(),
  // Deprecated 0.x form: one feed, all its streams.
  feed: id(),
};
export const SUBSCRIBE_STREAM: Table = {
  feed: id(true), mid: str(), crossrefid: str(), substream: layer, temporal: layer, spatial_layer: layer, temporal_layer: layer, min_delay: uint, max_delay: uint,
};
export const SUBSCRIBE: Table = { streams: { kind: 'object-array', required: true } };
export const UNSUBSCRIBE_STREAM: Table = { feed: id(), mid: str(), sub_mid: str() };
export const UPDATE: Table = { subscribe: { kind: 'object-array' }, unsubscribe: { kind: 'object-array' } };
export const SWITCH: Table = { streams: { kind: 'object-array', required: true } };
export const SWITCH_STREAM: Table = { feed: id(true), mid: str(true), sub_mid: str(true), substream: layer, temporal: layer, spatial_layer: layer, temporal_layer: layer };
export const SUBSCRIBER_CONFIGURE: Table = { streams: { kind: 'object-array' }, restart: bool, audio: bool, video: bool, data: bool, substream: layer, temporal: layer };
export const SUBSCRIBER_STREAM_CONFIGURE: Table = {
  mid: str(true), send: bool, substream: layer, temporal: layer, fallback: uint, spatial_layer: layer, temporal_layer: layer,
  audio_level_average: { kind: 'integer', min: 0, max: 127 }, audio_active_packets: { kind: 'integer', min: 1 }, min_delay: uint, max_delay: uint,
};

export const RTP_FORWARD: Table = {
  room: id(true), publisher_id: id(true), host: str(), host_family: str(), streams: { kind: 'object-array' }, srtp_suite: { kind: 'integer' },
  srtp_crypto: str(), admin_key: str(), secret: str(),
  // Deprecated flat fields.
  audio_port: { kind: 'port' }, audio_ssrc: uint, audio_pt: uint, video_port: { kind: 'port' }, video_ssrc: uint, video_pt: uint,
  video_port_2: { kind: 'port' }, video_ssrc_2: uint, video_pt_2: uint, video_port_3: { kind: 'port' }, video_ssrc_3: uint, video_pt_3: uint,
  data_port: { kind: 'port' }, simulcast: bool,
};
export const RTP_FORWARD_STREAM: Table = {
  mid: str(true), host: str(), host_family: str(), port: { kind: 'port', required: true }, ssrc: uint, pt: uint, rtcp_port: { kind: 'port' },
  simulcast: bool, port_2: { kind: 'port' }, ssrc_2: uint, pt_2: uint, port_3: { kind: 'port' }, ssrc_3: uint, pt_3: uint,
};
export const STOP_RTP_FORWARD: Table = { room: id(true), publisher_id: id(true), stream_id: { kind: 'integer', min: 0, required: true }, secret: str(), admin_key: str() };
export const LISTFORWARDERS: Table = { room: id(true), secret: str() };

export const ADD_REMOTE_PUBLISHER: Table = {
  room: id(true), id: id(), secret: str(), display: str(), metadata: { kind: 'any' }, mcast: str(), iface: str(), port: { kind: 'port' },
  rtcp_port: { kind: 'port' }, srtp_suite: { kind: 'integer' }, srtp_crypto: str(), streams: { kind: 'object-array', required: true },
};
export const REMOTE_STREAM: Table = {
  type: str(true), mindex: { kind: 'integer', min: 0, max: 99, required: true }, mid: str(true), codec: str(), description: str(), disabled: bool,
  stereo: bool, fec: bool, dtx: bool, h264_profile: str(), vp9_profile: str(), simulcast: bool, svc: bool,
  audiolevel_ext_id: { kind: 'integer', min: 1, max: 14 }, videoorient_ext_id: { kind: 'integer', min: 1, max: 14 }, playoutdelay_ext_id: { kind: 'integer', min: 1, max: 14 },
};
export const UPDATE_REMOTE_PUBLISHER: Table = {
  room: id(true), id: id(true), secret: str(), display: str(), metadata: { kind: 'any' }, srtp_suite: { kind: 'integer' }, srtp_crypto: str(),
  streams: { kind: 'object-array', required: true },
};
export const REMOVE_REMOTE_PUBLISHER: Table = { room: id(true), id: id(true), secret: str() };
export const PUBLISH_REMOTELY: Table = {
  room: id(true), publisher_id: id(true), remote_id: str(true), secret: str(), host: str(true), host_family: str(), port: { kind: 'port', required: true },
  rtcp_port: { kind: 'port' }, srtp_suite: { kind: 'integer' }, srtp_crypto: str(),
};
export const UNPUBLISH_REMOTELY: Table = { room: id(true), publisher_id: id(true), remote_id: str(true), secret: str() };
export const LISTREMOTES: Table = { room: id(true), publisher_id: id(true), secret: str() };

