/**
 * The VideoRoom's synchronous requests (answered at once, also through Admin
 * `message_plugin`) as one table: per request what its prologue checks, in
 * Janus's order, and what it then runs.
 *
 *   1. `adminKey`: the plugin's admin_key, always (`create`) or only with
 *      `lock_rtp_forward` (forwarders, cascading): 429/430/433;
 *   2. `schema`: the body's fields (requests.ts): 429/430;
 *   3. `check`: anything else about the body alone;
 *   4. `room`: the room must exist (426), and with 'secret' the body must
 *      carry the room's secret (429/430/433).
 *
 * Nothing changes before the prologue passed. The runs live beside their
 * kind: roomRequests.ts, forwardingRequests.ts, remotePublisherRequests.ts.
 */
import type { JsonObject } from '../../core/Json.js';
import { VideoRoomError, VideoRoomErrorCode, checkSecret } from './errors.js';
import { listForwarders, rtpForward, stopRtpForward } from './forwardingRequests.js';
import {
  addRemotePublisher,
  listRemotes,
  publishRemotely,
  removeRemotePublisherRequest,
  unpublishRemotely,
  updateRemotePublisher,
} from './remotePublisherRequests.js';
import * as R from './requests.js';
import type { Room } from './Room.js';
import {
  allowed,
  checkCreate,
  checkEdit,
  create,
  destroy,
  edit,
  enableRecording,
  exists,
  kick,
  list,
  listParticipants,
  moderate,
} from './roomRequests.js';
import type { VideoRoomHandle } from './VideoRoomHandle.js';
import type { VideoRoomPlugin } from './VideoRoomPlugin.js';

/** One synchronous request as its run sees it; `requester` is null for Admin `message_plugin`. */
export interface SyncCall {
  plugin: VideoRoomPlugin;
  body: JsonObject;
  requester: VideoRoomHandle | null;
}

/** A request about one room, after the room was found (and its secret checked where asked). */
export interface RoomCall extends SyncCall {
  room: Room;
}

interface Prologue {
  schema: R.Table;
  adminKey?: 'always' | 'lock_rtp_forward';
  check?(body: JsonObject, plugin: VideoRoomPlugin): void;
}

export type SyncRequest = Prologue &
  (
    | { room: 'none'; run(call: SyncCall): JsonObject }
    | { room: 'lookup' | 'secret'; run(call: RoomCall): JsonObject }
  );

const SYNC_REQUESTS: Readonly<Record<string, SyncRequest>> = {
  // rooms
  create:                  { schema: R.CREATE, adminKey: 'always', check: checkCreate, room: 'none', run: create },
  edit:                    { schema: R.EDIT, check: checkEdit, room: 'secret', run: edit },
  destroy:                 { schema: R.ROOM_SECRET, room: 'secret', run: destroy },
  exists:                  { schema: R.EXISTS, room: 'none', run: exists },
  list:                    { schema: R.LIST, room: 'none', run: list },
  allowed:                 { schema: R.ALLOWED, room: 'secret', run: allowed },
  kick:                    { schema: R.KICK, room: 'secret', run: kick },
  moderate:                { schema: R.MODERATE, room: 'secret', run: moderate },
  listparticipants:        { schema: R.LISTPARTICIPANTS, room: 'lookup', run: listParticipants },
  enable_recording:        { schema: R.ENABLE_RECORDING, room: 'secret', run: enableRecording },
  // RTP forwarders
  rtp_forward:             { schema: R.RTP_FORWARD, adminKey: 'lock_rtp_forward', room: 'secret', run: rtpForward },
  stop_rtp_forward:        { schema: R.STOP_RTP_FORWARD, adminKey: 'lock_rtp_forward', room: 'secret', run: stopRtpForward },
  listforwarders:          { schema: R.LISTFORWARDERS, room: 'secret', run: listForwarders },
  // cascading: the sending gateway
  publish_remotely:        { schema: R.PUBLISH_REMOTELY, adminKey: 'lock_rtp_forward', room: 'secret', run: publishRemotely },
  unpublish_remotely:      { schema: R.UNPUBLISH_REMOTELY, adminKey: 'lock_rtp_forward', room: 'secret', run: unpublishRemotely },
  listremotes:             { schema: R.LISTREMOTES, room: 'secret', run: listRemotes },
  list_remotes:            { schema: R.LISTREMOTES, room: 'secret', run: listRemotes },
  // cascading: the receiving gateway
  add_remote_publisher:    { schema: R.ADD_REMOTE_PUBLISHER, adminKey: 'lock_rtp_forward', room: 'secret', run: addRemotePublisher },
  update_remote_publisher: { schema: R.UPDATE_REMOTE_PUBLISHER, adminKey: 'lock_rtp_forward', room: 'secret', run: updateRemotePublisher },
  remove_remote_publisher: { schema: R.REMOVE_REMOTE_PUBLISHER, adminKey: 'lock_rtp_forward', room: 'secret', run: removeRemotePublisherRequest },
};

/** Whether `name` (lower case) is answered synchronously. */
export function isSyncRequest(name: string): boolean {
  return Object.hasOwn(SYNC_REQUESTS, name);
}

/** Runs the prologue of `name`'s table entry, then the request; throws VideoRoomError. */
export function runSyncRequest(plugin: VideoRoomPlugin, name: string, body: JsonObject, requester: VideoRoomHandle | null): JsonObject {
  const request = isSyncRequest(name) ? SYNC_REQUESTS[name] : undefined;
  if (!request) throw new VideoRoomError(VideoRoomErrorCode.INVALID_REQUEST, `Unknown request '${name}'`);
  const { adminKey } = plugin.config;
  if (request.adminKey === 'always' || (request.adminKey === 'lock_rtp_forward' && plugin.config.lockRtpForward)) {
    checkSecret(adminKey ?? undefined, body, 'admin_key');
  }
  R.validate(body, request.schema);
  request.check?.(body, plugin);
  const call: SyncCall = { plugin, body, requester };
  if (request.room === 'none') return request.run(call);
  const room = plugin.room(body);
  if (request.room === 'secret') checkSecret(room.config.secret, body, 'secret');
  return request.run({ ...call, room });
}
