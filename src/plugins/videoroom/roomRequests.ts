/**
 * The VideoRoom's room requests (create, edit, destroy, exists, list,
 * allowed, kick, moderate, listparticipants, enable_recording): the runs of
 * their syncRequests.ts entries, which checked the fields, the room and its
 * secret before.
 */
import type { JsonObject } from '../../core/Json.js';
import { field } from '../../core/Json.js';
import { VideoRoomError, VideoRoomErrorCode, checkRecorderAvailable, checkSecret, invalid, missing, noSuchFeed } from './errors.js';
import { Publisher } from './Publisher.js';
import { RemotePublisher } from './RemotePublisher.js';
import { ClusterFeed } from './ClusterFeed.js';
import { Room, defaultRoomConfig, type RoomConfig } from './Room.js';
import { parseCodecList } from './codecs.js';
import * as R from './requests.js';
import type { RoomCall, SyncCall } from './syncRequests.js';
import type { VideoRoomHandle } from './VideoRoomHandle.js';
import type { VideoRoomPlugin } from './VideoRoomPlugin.js';

function checkDescription(plugin: VideoRoomPlugin, body: JsonObject, key: string): void {
  const d = R.optString(body, key);
  const max = plugin.config.maxDescriptionLength;
  if (d !== undefined && d.length > max) throw invalid(key, `at most ${max} characters`);
}

export function checkCreate(body: JsonObject, plugin: VideoRoomPlugin): void {
  checkRecorderAvailable(R.optBool(body, 'record'), plugin.services?.recorder !== undefined);
  checkDescription(plugin, body, 'description');
}

export function checkEdit(body: JsonObject, plugin: VideoRoomPlugin): void {
  checkDescription(plugin, body, 'new_description');
}

/**
 * Room quotas for a client request (owner null = Admin message_plugin, exempt): the global
 * max_rooms, then the creating client's rooms_per_client. Both refusals are 433, what Janus
 * answers a `create` it does not allow (a missing admin_key).
 */
function admitRoom(plugin: VideoRoomPlugin, owner: VideoRoomHandle | null): (() => void) | null {
  if (owner === null) return null;
  const { maxRooms, quotas } = plugin.config;
  try {
    if (maxRooms > 0 && plugin.rooms.size >= maxRooms) {
      if (quotas) quotas.refuse('max_rooms', maxRooms, 'too many rooms on this server');
      throw new Error(`Quota exceeded: too many rooms on this server (max_rooms = ${maxRooms})`);
    }
    return quotas ? quotas.acquireRoom(owner.sessionId) : null;
  } catch (err) {
    throw new VideoRoomError(VideoRoomErrorCode.UNAUTHORIZED, (err as Error).message);
  }
}

export function create({ plugin, body, requester }: SyncCall): JsonObject {
  const permanent = body['permanent'] === true;
  if (permanent && !plugin.canPersist) throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, "No configuration file, can't create permanent room");
  const requested = R.optNumber(body, 'room');
  if (requested !== undefined && plugin.rooms.has(requested)) throw new VideoRoomError(VideoRoomErrorCode.ROOM_EXISTS, `Room ${requested} already exists`);
  const release = admitRoom(plugin, requester);
  try {
    return createAdmitted(plugin, body, permanent, requested, release);
  } catch (err) {
    release?.();
    throw err;
  }
}

function createAdmitted(plugin: VideoRoomPlugin, body: JsonObject, permanent: boolean, requested: number | undefined, release: (() => void) | null): JsonObject {
  const id = requested ?? plugin.freshId((i) => plugin.rooms.has(i));
  const config = defaultRoomConfig(id);
  const audio = R.optString(body, 'audiocodec');
  const video = R.optString(body, 'videocodec');
  if (audio !== undefined) config.audiocodec = parseCodecList(audio, 'audio') ?? fail(invalid('audiocodec', 'a list of supported audio codecs'));
  if (video !== undefined) config.videocodec = parseCodecList(video, 'video') ?? fail(invalid('videocodec', 'a list of supported video codecs'));
  const target = config as unknown as Record<string, unknown>;
  for (const key of [
    'description', 'secret', 'pin', 'is_private', 'require_pvtid', 'signed_tokens', 'bitrate', 'bitrate_cap', 'fir_freq', 'publishers',
    'vp9_profile', 'h264_profile', 'opus_fec', 'opus_dtx', 'audiolevel_ext', 'audiolevel_event', 'audio_active_packets', 'audio_level_average',
    'videoorient_ext', 'playoutdelay_ext', 'transport_wide_cc_ext', 'record', 'rec_dir', 'lock_record', 'notify_joining', 'require_e2ee', 'dummy_publisher',
  ]) {
    const v = field(body, key);
    if (v !== undefined && v !== null) target[key] = v;
  }
  const allowed = field(body, 'allowed');
  if (Array.isArray(allowed)) config.allowed = allowed.filter((a): a is string => typeof a === 'string');
  if (permanent) plugin.persist(config);
  const room = new Room(config);
  room.quotaRelease = release;
  plugin.addRoom(room);
  plugin.logger.info({ room: id, permanent }, 'videoroom: room created');
  return { videoroom: 'created', room: id, permanent };
}

export function edit({ plugin, body, room }: RoomCall): JsonObject {
  const permanent = body['permanent'] === true;
  if (permanent && !plugin.canPersist) throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, "No configuration file, can't edit permanent room");
  const next: RoomConfig = structuredClone(room.config);
  const s = (k: string) => R.optString(body, k);
  const n = (k: string) => R.optNumber(body, k);
  const b = (k: string) => R.optBool(body, k);
  next.description = s('new_description') ?? next.description;
  const newSecret = s('new_secret');
  if (newSecret !== undefined) next.secret = newSecret;
  const newPin = s('new_pin');
  if (newPin !== undefined) {
    if (newPin.length === 0) delete next.pin;
    else next.pin = newPin;
  }
  next.is_private = b('new_is_private') ?? next.is_private;
  next.require_pvtid = b('new_require_pvtid') ?? next.require_pvtid;
  next.bitrate = n('new_bitrate') ?? next.bitrate;
  next.fir_freq = n('new_fir_freq') ?? next.fir_freq;
  next.publishers = n('new_publishers') ?? next.publishers;
  next.lock_record = b('new_lock_record') ?? next.lock_record;
  const recDir = s('new_rec_dir');
  if (recDir !== undefined) next.rec_dir = recDir;
  if (permanent) plugin.persist(next);
  room.config = next;
  for (const p of room.participants.values()) if (p instanceof Publisher) p.roomEdited();
  return { videoroom: 'edited', room: room.id };
}

export function destroy({ plugin, body, room }: RoomCall): JsonObject {
  if (body['permanent'] === true) {
    if (!plugin.canPersist) throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, "No configuration file, can't destroy permanent room");
    try {
      plugin.store?.remove(room.id);
    } catch (err) {
      throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, (err as Error).message);
    }
  }
  plugin.dropRoom(room);
  return { videoroom: 'destroyed', room: room.id };
}

export function exists({ plugin, body }: SyncCall): JsonObject {
  const id = body['room'] as number;
  const room = plugin.rooms.get(id);
  return { videoroom: 'success', room: id, exists: room !== undefined && !room.destroyed };
}

export function list({ plugin, body }: SyncCall): JsonObject {
  const key = R.optString(body, 'admin_key');
  let showPrivate = false;
  if (key !== undefined && plugin.config.adminKey !== null) {
    checkSecret(plugin.config.adminKey, body, 'admin_key');
    showPrivate = true;
  }
  const list = [...plugin.rooms.values()].filter((r) => !r.destroyed && (showPrivate || !r.config.is_private)).map((r) => r.describe());
  return { videoroom: 'success', list };
}

export function allowed({ plugin, body, room }: RoomCall): JsonObject {
  const action = String(body['action']);
  const tokens = Array.isArray(body['allowed']) ? (body['allowed'] as string[]) : undefined;
  if (!['enable', 'disable', 'add', 'remove'].includes(action)) throw invalid('action', '"enable", "disable", "add" or "remove"');
  if ((action === 'add' || action === 'remove') && tokens === undefined) throw missing('allowed');
  const next = structuredClone(room.config);
  if (action === 'enable') next.allowed = next.allowed ?? [];
  else if (action === 'disable') next.allowed = null;
  else if (action === 'add') next.allowed = [...new Set([...(next.allowed ?? []), ...(tokens ?? [])])];
  else next.allowed = (next.allowed ?? []).filter((t) => !(tokens ?? []).includes(t));
  if (body['permanent'] === true) plugin.persist(next);
  room.config = next;
  const out: JsonObject = { videoroom: 'success', room: room.id };
  if (next.allowed !== null) out['allowed'] = [...next.allowed];
  return out;
}

export function kick({ plugin, body, room }: RoomCall): JsonObject {
  const id = body['id'] as number;
  const feed = room.participants.get(id);
  if (!feed) throw noSuchFeed(id);
  if (feed instanceof RemotePublisher) plugin.removeRemotePublisher(feed, 'kicked');
  else if (feed instanceof ClusterFeed) plugin.cluster?.kickRemote(room, feed);
  else if (feed instanceof Publisher) plugin.removeParticipant(feed, 'kicked');
  return { videoroom: 'success' };
}

export function moderate({ body, room }: RoomCall): JsonObject {
  const id = body['id'] as number;
  const feed = room.participants.get(id);
  if (!feed) throw noSuchFeed(id);
  const mid = String(body['mid']);
  const stream = feed.stream(mid);
  if (!stream) throw new VideoRoomError(VideoRoomErrorCode.NO_SUCH_FEED, `No such mid '${mid}' in feed ${id}`);
  const mute = body['mute'] === true;
  if (stream.moderated !== mute) {
    stream.moderated = mute;
    feed.refreshForwarders();
    room.feedChanged(feed);
    if (feed.publishing) room.notify({ videoroom: 'event', room: room.id, publishers: [feed.describe(room.config.audiolevel_event)] }, feed);
  }
  return { videoroom: 'success' };
}

export function listParticipants({ room }: RoomCall): JsonObject {
  const participants = [...room.participants.values()].map((f) => {
    const p: JsonObject = { id: f.id, ...f.identity(), publisher: f.publishing };
    // A participant of another cluster node is listed as on its own node: the list is the same everywhere.
    if (f.remote && !(f instanceof ClusterFeed)) p['remote'] = true;
    if (room.config.audiolevel_event && f.publishing) p['talking'] = f.talking;
    return p;
  });
  return { videoroom: 'participants', room: room.id, participants };
}

/**
 * Janus `enable_recording`: starts or stops recording the room, every publisher in it
 * included (their own `record` follows), whatever `lock_record` says.
 */
export function enableRecording({ plugin, body, room }: RoomCall): JsonObject {
  const record = R.optBool(body, 'record') === true;
  checkRecorderAvailable(record, plugin.services?.recorder !== undefined);
  room.config.record = record;
  const recordings: JsonObject[] = [];
  for (const p of room.participants.values()) {
    if (!(p instanceof Publisher)) continue;
    p.recordRequested = record;
    p.updateRecording();
    for (const r of p.recordingFiles) if (r.active) recordings.push({ id: p.id, ...r.describe() });
  }
  return { videoroom: 'success', record, recordings };
}

function fail(err: Error): never {
  throw err;
}
