/**
 * The VideoRoom's RTP forwarding requests (rtp_forward, stop_rtp_forward,
 * listforwarders): plain RTP copies of a publisher's streams to a host and
 * port, each leg owned by one RtpForwarder on its feed. The runs of their
 * syncRequests.ts entries, which checked the fields, the lock, the room and
 * its secret before.
 */
import { randomInt } from 'node:crypto';
import type { JsonObject } from '../../core/Json.js';
import { field } from '../../core/Json.js';
import { VideoRoomError, VideoRoomErrorCode, invalid, missing, noSuchFeed } from './errors.js';
import type { Feed } from './Feed.js';
import { placementGroup, type Room } from './Room.js';
import { RtpForwarder, type ForwardTarget } from './RtpForwarder.js';
import * as R from './requests.js';
import { sdesKeys, srtpFromRequest } from './srtp.js';
import type { RoomCall } from './syncRequests.js';

/** The feed `id` of `room` if it is publishing, else 428. */
export function publishingFeed(room: Room, id: number): Feed {
  const feed = room.participants.get(id);
  if (!feed || !feed.publishing) throw noSuchFeed(id);
  return feed;
}

export function rtpForward({ plugin, body, room, requester }: RoomCall): JsonObject {
  const feed = publishingFeed(room, body['publisher_id'] as number);
  const srtp = srtpFromRequest(body);
  const defaultHost = R.optString(body, 'host');
  const entries = forwardEntries(body, feed);
  const planned: { host: string; port: number; stream: { mid: string; type: string }; target: ForwardTarget; substream?: number; rtcpPort?: number }[] = [];
  for (const e of entries) {
    R.validate(e, R.RTP_FORWARD_STREAM, 'streams.');
    const mid = String(e['mid']);
    const stream = feed.stream(mid);
    if (!stream || stream.disabled) throw new VideoRoomError(VideoRoomErrorCode.NO_SUCH_FEED, `No such mid '${mid}' in feed ${feed.id}`);
    const host = R.optString(e, 'host') ?? defaultHost;
    if (host === undefined) throw missing('host');
    const layers = stream.simulcast && e['simulcast'] === true ? 3 : 1;
    for (let layer = 0; layer < layers; layer++) {
      const suffix = layer === 0 ? '' : `_${layer + 1}`;
      const port = R.optNumber(e, `port${suffix}`);
      if (port === undefined) {
        if (layer === 0) throw missing('port');
        continue;
      }
      if (port === 0) throw invalid(`port${suffix}`, 'an integer between 1 and 65535');
      const ssrc = R.optNumber(e, `ssrc${suffix}`) ?? randomInt(1, 2 ** 32);
      const pt = R.optNumber(e, `pt${suffix}`);
      // Without `simulcast`, Janus forwards substream 0 only.
      const target: ForwardTarget = { mid, layer, ssrc };
      if (pt !== undefined) target.payloadType = pt;
      const entry: (typeof planned)[number] = { host, port, stream: { mid, type: stream.type }, target };
      if (layers > 1) entry.substream = layer;
      const rtcpPort = R.optNumber(e, 'rtcp_port');
      if (layer === 0 && rtcpPort !== undefined) entry.rtcpPort = rtcpPort;
      planned.push(entry);
    }
  }
  if (planned.length === 0) throw missing('streams');
  const created: { id: number; fwd: RtpForwarder }[] = [];
  try {
    for (const p of planned) {
      const streamId = plugin.freshId((i) => feed.forwarders.has(i) || created.some((c) => c.id === i)) % 2 ** 32;
      const leg = plugin.openLeg(requester, {
        owner: `videoroom:${room.id}:forwarder:${feed.id}:${streamId}`,
        placementGroup: placementGroup(room.id),
        pool: 'rtp',
        remote: { address: p.host, port: p.port },
        latch: false,
        ...(srtp ? { srtp: sdesKeys(srtp) } : {}),
      });
      const info: JsonObject = { stream_id: streamId, type: p.stream.type, host: p.host, port: p.port };
      if (p.rtcpPort !== undefined) {
        info['local_rtcp_port'] = leg.port;
        info['remote_rtcp_port'] = p.rtcpPort;
      }
      info['ssrc'] = p.target.ssrc;
      if (p.target.payloadType !== undefined) info['pt'] = p.target.payloadType;
      if (p.substream !== undefined) info['substream'] = p.substream;
      info['srtp'] = srtp !== null;
      const fwd = new RtpForwarder(leg, plugin.services?.router ?? null, [p.target], info);
      created.push({ id: streamId, fwd });
      fwd.refresh(feed);
    }
  } catch (err) {
    for (const c of created) c.fwd.close();
    throw err;
  }
  for (const c of created) feed.forwarders.set(c.id, c.fwd);
  return { videoroom: 'rtp_forward', room: room.id, publisher_id: feed.id, forwarders: created.map((c) => c.fwd.info) };
}

export function stopRtpForward({ body, room }: RoomCall): JsonObject {
  const publisherId = body['publisher_id'] as number;
  const feed = room.participants.get(publisherId);
  if (!feed) throw noSuchFeed(publisherId);
  const streamId = body['stream_id'] as number;
  const fwd = feed.forwarders.get(streamId);
  if (!fwd) throw new VideoRoomError(VideoRoomErrorCode.NO_SUCH_FEED, `No such stream (${streamId})`);
  fwd.close();
  feed.forwarders.delete(streamId);
  return { videoroom: 'stop_rtp_forward', room: room.id, publisher_id: publisherId, stream_id: streamId };
}

export function listForwarders({ room }: RoomCall): JsonObject {
  const publishers: JsonObject[] = [];
  for (const feed of room.participants.values()) {
    if (feed.forwarders.size === 0) continue;
    const entry: JsonObject = { publisher_id: feed.id };
    if (feed.display !== undefined) entry['display'] = feed.display;
    entry['forwarders'] = [...feed.forwarders.values()].map((f) => f.info);
    publishers.push(entry);
  }
  return { videoroom: 'forwarders', room: room.id, publishers };
}

/** rtp_forward's `streams`, or the deprecated flat audio_port/video_port form mapped onto the feed's first audio/video m-lines. */
function forwardEntries(body: JsonObject, feed: Feed): JsonObject[] {
  const streams = R.objects(body, 'streams');
  if (streams.length > 0) return streams;
  const out: JsonObject[] = [];
  for (const kind of ['audio', 'video'] as const) {
    const port = R.optNumber(body, `${kind}_port`);
    if (port === undefined) continue;
    const stream = feed.streams.find((s) => s.type === kind && !s.disabled);
    if (!stream) continue;
    const e: JsonObject = { mid: stream.mid, port };
    for (const [from, to] of [['ssrc', 'ssrc'], ['pt', 'pt'], ['port_2', 'port_2'], ['ssrc_2', 'ssrc_2'], ['pt_2', 'pt_2'], ['port_3', 'port_3'], ['ssrc_3', 'ssrc_3'], ['pt_3', 'pt_3']] as const) {
      const v = field(body, `${kind}_${from}`);
      if (v !== undefined) e[to] = v;
    }
    if (kind === 'video' && body['simulcast'] === true) e['simulcast'] = true;
    out.push(e);
  }
  return out;
}
