/**
 * The VideoRoom's cascading requests, both sides of a room spread over
 * gateways. Sending: publish_remotely, unpublish_remotely, list_remotes
 * (a publisher's streams to another gateway, one RtpForwarder leg each).
 * Receiving: add_remote_publisher, update_remote_publisher,
 * remove_remote_publisher (a RemotePublisher feed on one latched RTP port).
 * The runs of their syncRequests.ts entries, which checked the fields, the
 * lock, the room and its secret before.
 */
import type { JsonObject } from '../../core/Json.js';
import { field } from '../../core/Json.js';
import { assignDefined } from '../../core/RequestTable.js';
import { VideoRoomError, VideoRoomErrorCode, invalid, missing, noSuchFeed } from './errors.js';
import type { Feed } from './Feed.js';
import { publishingFeed } from './forwardingRequests.js';
import { RemotePublisher, randomSsrcOffset, type RemoteStreamSpec } from './RemotePublisher.js';
import { placementGroup, type Room } from './Room.js';
import { RtpForwarder } from './RtpForwarder.js';
import { codecKind } from './codecs.js';
import * as R from './requests.js';
import { sdesKeys, srtpFromRequest } from './srtp.js';
import type { RoomCall } from './syncRequests.js';

// ---- the sending gateway -------------------------------------------------------------------------

export function publishRemotely({ plugin, body, room, requester }: RoomCall): JsonObject {
  const feed = publishingFeed(room, body['publisher_id'] as number);
  if (feed.remote) throw new VideoRoomError(VideoRoomErrorCode.INVALID_ELEMENT, 'Remote publishers cannot be published remotely');
  const remoteId = String(body['remote_id']);
  if (feed.remotes.has(remoteId)) throw new VideoRoomError(VideoRoomErrorCode.ID_EXISTS, `Remote ID ${remoteId} already exists`);
  const port = body['port'] as number;
  if (port === 0) throw invalid('port', 'an integer between 1 and 65535');
  const host = String(body['host']);
  const srtp = srtpFromRequest(body);
  const leg = plugin.openLeg(requester, {
    owner: `videoroom:${room.id}:remotize:${feed.id}:${remoteId}`,
    placementGroup: placementGroup(room.id),
    pool: 'rtp',
    remote: { address: host, port },
    latch: false,
    ...(srtp ? { srtp: sdesKeys(srtp) } : {}),
  });
  const info: JsonObject = { remote_id: remoteId, host, port };
  const rtcpPort = R.optNumber(body, 'rtcp_port');
  if (rtcpPort !== undefined) info['rtcp_port'] = rtcpPort;
  const fwd = new RtpForwarder(leg, plugin.services?.router ?? null, null, info);
  fwd.refresh(feed);
  feed.remotes.set(remoteId, fwd);
  return { videoroom: 'success', room: room.id, id: feed.id, remote_id: remoteId };
}

export function unpublishRemotely({ body, room }: RoomCall): JsonObject {
  const id = body['publisher_id'] as number;
  const feed = room.participants.get(id);
  if (!feed) throw noSuchFeed(id);
  const remoteId = String(body['remote_id']);
  const fwd = feed.remotes.get(remoteId);
  if (!fwd) throw new VideoRoomError(VideoRoomErrorCode.NO_SUCH_FEED, `No such remote ID (${remoteId})`);
  fwd.close();
  feed.remotes.delete(remoteId);
  return { videoroom: 'success', room: room.id, id };
}

export function listRemotes({ body, room }: RoomCall): JsonObject {
  const id = body['publisher_id'] as number;
  const feed = room.participants.get(id);
  if (!feed) throw noSuchFeed(id);
  return { videoroom: 'success', room: room.id, id, list: [...feed.remotes.values()].map((f) => f.info) };
}

// ---- the receiving gateway -----------------------------------------------------------------------

export function addRemotePublisher({ plugin, body, room, requester: owner }: RoomCall): JsonObject {
  const requested = R.optNumber(body, 'id');
  if (requested !== undefined && room.participants.has(requested)) throw new VideoRoomError(VideoRoomErrorCode.ID_EXISTS, `User ID ${requested} already exists`);
  if (room.publishingFeeds.length >= room.config.publishers) {
    throw new VideoRoomError(VideoRoomErrorCode.PUBLISHERS_FULL, `Maximum number of publishers (${room.config.publishers}) already reached`);
  }
  const specs = remoteStreamSpecs(R.objects(body, 'streams'), room, []);
  if (specs.length === 0) throw missing('streams');
  const srtp = srtpFromRequest(body);
  const id = requested ?? plugin.freshId((i) => room.participants.has(i));
  const port = R.optNumber(body, 'port') ?? 0;
  const leg = plugin.openLeg(owner, {
    owner: `videoroom:${room.id}:remote:${id}`,
    placementGroup: placementGroup(room.id),
    pool: 'rtp',
    latch: true,
    ...(srtp ? { srtp: sdesKeys(srtp) } : {}),
    ...(port !== 0 ? { port } : {}),
  });
  const rp = new RemotePublisher(id, room, leg, randomSsrcOffset(), owner);
  try {
    rp.display = R.optString(body, 'display');
    const metadata = field(body, 'metadata');
    if (metadata !== undefined && metadata !== null) rp.metadata = metadata;
    rp.applyStreams(specs);
    leg.onUnknownSsrc((info) => plugin.logger.debug({ room: room.id, id, ...info }, 'videoroom: remote publisher packet with unknown SSRC'));
  } catch (err) {
    rp.close();
    throw err instanceof VideoRoomError ? err : new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, (err as Error).message);
  }
  room.participants.set(id, rp);
  room.notify({ videoroom: 'event', room: room.id, publishers: [rp.describe(room.config.audiolevel_event)] }, rp);
  const out: JsonObject = { videoroom: 'success', room: room.id, id };
  if (body['iface'] !== undefined || body['mcast'] !== undefined) out['ip'] = leg.address;
  // RTP and RTCP share the one port (RFC 5761), so both are reported as it.
  out['port'] = leg.port;
  out['rtcp_port'] = leg.port;
  return out;
}

function remotePublisher(room: Room, id: number): RemotePublisher {
  const feed = room.participants.get(id);
  if (!feed) throw noSuchFeed(id);
  if (!(feed instanceof RemotePublisher)) throw new VideoRoomError(VideoRoomErrorCode.INVALID_ELEMENT, `Publisher ${id} is not a remote publisher`);
  return feed;
}

export function updateRemotePublisher({ body, room }: RoomCall): JsonObject {
  const rp = remotePublisher(room, body['id'] as number);
  const specs = remoteStreamSpecs(R.objects(body, 'streams'), room, rp.streams);
  const srtp = srtpFromRequest(body);
  const display = R.optString(body, 'display');
  if (display !== undefined) rp.display = display;
  const metadata = field(body, 'metadata');
  if (metadata !== undefined && metadata !== null) rp.metadata = metadata;
  if (srtp) rp.leg.setSrtp(sdesKeys(srtp));
  rp.applyStreams(specs);
  rp.refreshForwarders();
  room.feedChanged(rp);
  room.notify({ videoroom: 'event', room: room.id, publishers: [rp.describe(room.config.audiolevel_event)] }, rp);
  return { videoroom: 'success' };
}

export function removeRemotePublisherRequest({ plugin, body, room }: RoomCall): JsonObject {
  plugin.removeRemotePublisher(remotePublisher(room, body['id'] as number), 'removed');
  return { videoroom: 'success' };
}

/** Validates add/update_remote_publisher streams; codec defaults to the room's first of that kind. */
function remoteStreamSpecs(entries: JsonObject[], room: Room, existing: Feed['streams']): RemoteStreamSpec[] {
  const specs: RemoteStreamSpec[] = [];
  for (const e of entries) {
    R.validate(e, R.REMOTE_STREAM, 'streams.');
    const type = String(e['type']);
    if (type !== 'audio' && type !== 'video' && type !== 'data') throw invalid('streams.type', '"audio", "video" or "data"');
    const mindex = e['mindex'] as number;
    const mid = String(e['mid']);
    if (specs.some((s) => s.mindex === mindex || s.mid === mid)) throw invalid('streams', 'a list of distinct mindex/mid values');
    const clash = existing.find((s) => (s.mindex === mindex) !== (s.mid === mid));
    if (clash) throw invalid('streams', `consistent with the existing mindex ${clash.mindex} / mid ${clash.mid}`);
    let codec: string | null = null;
    if (type !== 'data') {
      const given = R.optString(e, 'codec')?.toLowerCase();
      codec = given ?? (type === 'audio' ? room.config.audiocodec[0] : room.config.videocodec[0]) ?? null;
      if (codec === null || codecKind(codec) !== type) throw invalid('streams.codec', `a supported ${type} codec`);
    }
    const spec: RemoteStreamSpec = {
      type, mindex, mid, codec,
      disabled: e['disabled'] === true,
      simulcast: e['simulcast'] === true,
      stereo: e['stereo'] === true,
      fec: e['fec'] !== false,
      dtx: e['dtx'] === true,
    };
    assignDefined(spec, {
      description: R.optString(e, 'description'),
      h264Profile: R.optString(e, 'h264_profile') ?? R.optString(e, 'h264-profile'),
      vp9Profile: R.optString(e, 'vp9_profile') ?? R.optString(e, 'vp9-profile'),
    });
    specs.push(spec);
  }
  return specs;
}
