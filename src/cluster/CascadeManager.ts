/**
 * Automatic cascading between cluster nodes on the existing remote-publisher path (Janus PR
 * #3014 as remotePublisherRequests.ts implements it): at most one cascade per (feed, node).
 *
 * Receiving node: when a local subscriber starts consuming a participant of another node
 * (a ClusterFeed), this node opens one plain RTP leg (a leased port, SRTP with a fresh
 * AES_CM_128_HMAC_SHA1_80 key, RFC 3711 / RFC 4568 §6.2.1), attaches it to the feed and asks the
 * publisher's node to `publish_remotely` there. More local subscribers add nothing; when the
 * last one stops consuming, the leg is closed and the publisher's node is asked to
 * `unpublish_remotely`.
 *
 * Publishing node: answers those requests with its `publish_remotely`/`unpublish_remotely`
 * (remote id `cluster:<node>`), and closes the forwarders towards nodes that are gone.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';

import type { JsonObject } from '../core/Json.js';
import { ClusterFeed } from '../plugins/videoroom/ClusterFeed.js';
import { Publisher } from '../plugins/videoroom/Publisher.js';
import { placementGroup, type Room } from '../plugins/videoroom/Room.js';
import { publishRemotely } from '../plugins/videoroom/remotePublisherRequests.js';
import { sdesKeys } from '../plugins/videoroom/srtp.js';
import type { VideoRoomPlugin } from '../plugins/videoroom/VideoRoomPlugin.js';
import type { ClusterBus } from './ClusterBus.js';

const REMOTE_ID_PREFIX = 'cluster:';
/** SRTP master key (16 bytes) and salt (14 bytes), base64 as Janus's `srtp_crypto`. */
const SRTP_KEY_SALT_BYTES = 30;

interface Cascade {
  room: Room;
  feed: ClusterFeed;
  port: number;
  since: number;
  /** The publisher's node confirmed it is sending. */
  confirmed: boolean;
}

export class CascadeManager {
  /** Cascades into this node, by feed. */
  private readonly incoming = new Map<ClusterFeed, Cascade>();
  /** Cascades started here so far, and those that failed (the publisher's node refused or did not answer). */
  started = 0;
  failures = 0;

  constructor(
    private readonly plugin: VideoRoomPlugin,
    private readonly bus: ClusterBus,
    private readonly nodeId: string,
    private readonly advertise: string,
    private readonly logger: Logger,
  ) {
    bus.handle('publish_remotely', (params, from) => this.sendTo(params, from));
    bus.handle('unpublish_remotely', (params, from) => this.stopSendingTo(params, from));
  }

  // ---- receiving -------------------------------------------------------------------------------------

  /** Starts and stops this room's incoming cascades to match what local subscribers consume. */
  followDemand(room: Room): void {
    for (const [feed, c] of this.incoming) {
      // Gone from under us (unpublished, left, node gone, room destroyed): its leg went with it.
      if (feed.cascadePort !== c.port || !feed.publishing || c.room.destroyed) this.incoming.delete(feed);
    }
    if (room.destroyed) return;
    for (const feed of room.participants.values()) {
      if (!(feed instanceof ClusterFeed)) continue;
      const wanted = feed.publishing && [...room.subscribers].some((s) => s.consumes?.(feed) ?? false);
      const cascade = this.incoming.get(feed);
      if (wanted && !cascade) this.start(room, feed);
      else if (!wanted && cascade) this.stop(cascade);
    }
  }

  private start(room: Room, feed: ClusterFeed): void {
    const crypto = randomBytes(SRTP_KEY_SALT_BYTES).toString('base64');
    let leg;
    try {
      leg = this.plugin.openLeg(null, {
        owner: `videoroom:${room.id}:cascade:${feed.id}:${feed.node}`,
        placementGroup: placementGroup(room.id),
        pool: 'rtp',
        latch: true,
        srtp: sdesKeys({ suite: 80, crypto }),
      });
    } catch (err) {
      this.failures++;
      this.logger.warn({ err, room: room.id, feed: feed.id }, 'cluster: no port for a cascade');
      return;
    }
    feed.attach(leg);
    feed.refreshForwarders();
    room.feedChanged(feed);
    this.started++;
    const cascade: Cascade = { room, feed, port: leg.port, since: Date.now(), confirmed: false };
    this.incoming.set(feed, cascade);
    const params = { room: room.id, feed: feed.id, host: this.advertise, port: leg.port, srtp_crypto: crypto };
    this.bus.request(feed.node, 'publish_remotely', params).then(
      () => {
        cascade.confirmed = true;
      },
      (err: unknown) => {
        this.failures++;
        this.logger.warn({ err, room: room.id, feed: feed.id, node: feed.node }, 'cluster: cascade refused');
        // Undone unless something else happened meanwhile; the next tick tries again if still wanted.
        if (this.incoming.get(feed) === cascade) {
          this.incoming.delete(feed);
          feed.detach();
          room.feedChanged(feed);
        }
      },
    );
  }

  private stop(cascade: Cascade): void {
    const { room, feed } = cascade;
    this.incoming.delete(feed);
    feed.detach();
    this.bus.request(feed.node, 'unpublish_remotely', { room: room.id, feed: feed.id }).catch((err: unknown) => {
      // Its node may be gone; if not, it closes the forwarder when it next sees us gone or re-asked.
      this.logger.debug({ err, room: room.id, feed: feed.id }, 'cluster: unpublish_remotely not confirmed');
    });
  }

  // ---- sending ---------------------------------------------------------------------------------------

  private sendTo(params: JsonObject, from: string): JsonObject {
    const { room, feed } = this.localFeed(params);
    const remoteId = REMOTE_ID_PREFIX + from;
    // A node that asks again (it restarted, or its last stop was lost) gets a fresh forwarder.
    feed.remotes.get(remoteId)?.close();
    feed.remotes.delete(remoteId);
    const body: JsonObject = {
      request: 'publish_remotely', room: room.id, publisher_id: feed.id, remote_id: remoteId,
      host: String(params['host']), port: Number(params['port']), srtp_suite: 80, srtp_crypto: String(params['srtp_crypto']),
    };
    return publishRemotely({ plugin: this.plugin, body, room, requester: null });
  }

  private stopSendingTo(params: JsonObject, from: string): JsonObject {
    const room = this.plugin.rooms.get(Number(params['room']));
    const feed = room?.participants.get(Number(params['feed']));
    const remoteId = REMOTE_ID_PREFIX + from;
    const fwd = feed?.remotes.get(remoteId);
    if (feed && fwd) {
      fwd.close();
      feed.remotes.delete(remoteId);
    }
    return { stopped: fwd !== undefined };
  }

  private localFeed(params: JsonObject): { room: Room; feed: Publisher } {
    const room = this.plugin.rooms.get(Number(params['room']));
    if (!room || room.destroyed) throw new Error(`no room ${String(params['room'])} here`);
    const feed = room.participants.get(Number(params['feed']));
    if (!(feed instanceof Publisher) || !feed.publishing) throw new Error(`no publishing feed ${String(params['feed'])} here`);
    return { room, feed };
  }

  /** Closes forwarders towards nodes that are gone. */
  dropDeadTargets(isLive: (node: string) => boolean): void {
    for (const room of this.plugin.rooms.values()) {
      for (const feed of room.participants.values()) {
        for (const [remoteId, fwd] of feed.remotes) {
          if (remoteId.startsWith(REMOTE_ID_PREFIX) && !isLive(remoteId.slice(REMOTE_ID_PREFIX.length))) {
            fwd.close();
            feed.remotes.delete(remoteId);
          }
        }
      }
    }
  }

  // ---- what Admin shows -------------------------------------------------------------------------------

  cascadesIn(): JsonObject[] {
    const router = this.plugin.services?.router;
    return [...this.incoming.values()].map((c) => ({
      room: c.room.id, feed: c.feed.id, from: c.feed.node, port: c.port, confirmed: c.confirmed, since: c.since,
      // What arrives over it now (every stream's layers): 0 on a cascade that carries nothing.
      bitrate_bps: c.feed.streams.reduce((n, s) => n + s.layers.reduce((m, source) => m + (router?.sourceBitrate?.(source) ?? 0), 0), 0),
    }));
  }

  cascadesOut(): JsonObject[] {
    const out: JsonObject[] = [];
    for (const room of this.plugin.rooms.values()) {
      for (const feed of room.participants.values()) {
        for (const [remoteId, fwd] of feed.remotes) {
          if (!remoteId.startsWith(REMOTE_ID_PREFIX)) continue;
          out.push({ room: room.id, feed: feed.id, to: remoteId.slice(REMOTE_ID_PREFIX.length), port: fwd.info['port'] ?? null, local_port: fwd.leg.port });
        }
      }
    }
    return out;
  }

  /** Shutdown: incoming cascades end with their feeds (the plugin closes them); nothing else is held. */
  clear(): void {
    this.incoming.clear();
  }
}
