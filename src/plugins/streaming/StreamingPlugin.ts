/**
 * `janus.plugin.streaming` for `rtp` mountpoints: an encoder sends RTP to
 * ports ferry leased for the mountpoint, and every viewer (janus.js `watch`,
 * or a WHEP player) gets it over WebRTC through the engine's fan-out. Request
 * names, event shapes and error codes are janus_streaming.c's; media goes
 * only through ferry's seams: ingest ports are `MediaServices.openRtpLeg`
 * legs owned by their mountpoint, viewers' PeerConnections offer
 * (`createOffer`) or answer (`createAnswer`), and `MediaRouter` connects
 * outputs to sources.
 *
 * This file holds the plugin (mountpoints, the synchronous requests, the
 * periodic SSRC/age bookkeeping); StreamingHandle.ts a handle's viewer
 * requests; Viewer.ts the viewer; Mountpoint.ts the mountpoint.
 */
import type { Logger } from 'pino';
import { freshId } from '../../core/FreshId.js';
import { field, type JsonObject } from '../../core/Json.js';
import type { Plugin, PluginContext, PluginHandle, PluginInfo } from '../../core/Plugin.js';
import { assignDefined } from '../../core/RequestTable.js';
import { createLogger } from '../../log/logger.js';
import type { MediaServices, RtpLeg } from '../../media/Routing.js';
import { SystemClock, type Clock, type Timer } from '../../time/Clock.js';
import { CODECS, codecKind } from '../videoroom/codecs.js';
import { sdesKeys } from '../videoroom/srtp.js';
import { StreamingError, StreamingErrorCode, checkSecret, errorData, holdsSecret, invalid, missing, noSuchMountpoint } from './errors.js';
import { DEFAULT_COLLISION_MS, Mountpoint, type MediaConfig, type MountpointConfig } from './Mountpoint.js';
import { MountpointStore } from './MountpointStore.js';
import * as R from './requests.js';
import { StreamingHandle, placementGroup } from './StreamingHandle.js';

export const STREAMING_PACKAGE = 'janus.plugin.streaming';

export interface StreamingConfig {
  /** JSON file holding permanent mountpoints; null: `permanent: true` is refused. */
  mountpointsFile: string | null;
  /** When set, `create` needs it (and `list` shows private mountpoints to who gives it). */
  adminKey: string | null;
  /** Per-client quota on ports (core Quotas): each ingest port counts like a PeerConnection of its creator. */
  quotas: LegQuotas | null;
  /** Mountpoints that exist from start, as `create` requests (like janus.plugin.streaming.jcfg); not written to the file. */
  mountpoints: JsonObject[];
}

/** What the plugin needs from the core's per-client quotas. */
export interface LegQuotas {
  acquirePeerConnection(sessionId: number): () => void;
}

export interface StreamingPluginOptions {
  media: MediaServices | null;
  config?: Partial<StreamingConfig>;
  clock?: Clock;
  logger?: Logger;
}

/** How often sources' packet counts are read (age_ms, SSRC changes after `collision`). */
const TICK_MS = 500;

/** Payload types a `create` without `pt` gets: the static ones, else the usual dynamic numbers. */
const DEFAULT_PT: Readonly<Record<string, number>> = { opus: 111, multiopus: 111, pcmu: 0, pcma: 8, g722: 9, isac16: 103, isac32: 104, vp8: 96, vp9: 98, h264: 102, av1: 45, h265: 49 };

export class StreamingPlugin implements Plugin {
  readonly info: PluginInfo = {
    package: STREAMING_PACKAGE,
    name: 'JANUS Streaming plugin',
    description: 'RTP streams from an external source (ffmpeg, GStreamer, an encoder) relayed to WebRTC viewers (ferry implementation).',
    author: 'ferry',
    version: 10,
    versionString: '0.0.10',
  };

  readonly mountpoints = new Map<number, Mountpoint>();
  readonly services: MediaServices | null;
  readonly config: StreamingConfig;
  readonly logger: Logger;
  private readonly clock: Clock;
  private readonly store: MountpointStore | null;
  private readonly handles = new Set<StreamingHandle>();
  private readonly timer: Timer;

  constructor(options: StreamingPluginOptions) {
    this.services = options.media;
    this.config = { mountpointsFile: null, adminKey: null, quotas: null, mountpoints: [], ...options.config };
    this.clock = options.clock ?? new SystemClock();
    this.logger = options.logger ?? createLogger('silent');
    this.store = this.config.mountpointsFile ? new MountpointStore(this.config.mountpointsFile) : null;
    for (const request of this.config.mountpoints) {
      try {
        this.createMountpoint(request, null, false);
      } catch (err) {
        this.logger.error({ err, request: { ...request, secret: undefined, pin: undefined } }, 'streaming: configured mountpoint not created');
      }
    }
    for (const config of this.store?.load() ?? []) {
      try {
        this.open(config, null);
      } catch (err) {
        this.logger.error({ err, id: config.id }, 'streaming: permanent mountpoint not restored');
      }
    }
    this.timer = this.clock.setInterval(() => this.tick(), TICK_MS);
  }

  attach(context: PluginContext): PluginHandle {
    const handle = new StreamingHandle(this, context);
    this.handles.add(handle);
    return handle;
  }

  forgetHandle(handle: StreamingHandle): void {
    this.handles.delete(handle);
  }

  async handleAdminMessage(request: JsonObject): Promise<JsonObject> {
    return this.handleSync(request, null);
  }

  /** Shutdown (handles were already destroyed by the core): every mountpoint's ports are released. */
  destroy(): void {
    this.timer.cancel();
    for (const mp of this.mountpoints.values()) mp.close(false);
    this.mountpoints.clear();
  }

  private tick(): void {
    if (this.mountpoints.size === 0) return;
    const packets = this.services?.router.sourcePackets?.() ?? new Map<number, number>();
    const now = this.clock.now();
    for (const mp of this.mountpoints.values()) mp.tick(now, packets);
  }

  mountpoint(id: number): Mountpoint {
    const mp = this.mountpoints.get(id);
    if (!mp || mp.destroyed) throw noSuchMountpoint(id);
    return mp;
  }

  // ---- synchronous requests --------------------------------------------------------------------

  /** Runs a synchronous request; plugin errors come back as `{streaming:"event",error_code,error}`. */
  handleSync(body: JsonObject, owner: StreamingHandle | null): JsonObject {
    try {
      R.validate(body, R.REQUEST);
      const request = String(body['request']).toLowerCase();
      switch (request) {
        case 'list': return this.list(body);
        case 'info': return this.infoRequest(body);
        case 'create': return this.create(body, owner);
        case 'edit': return this.edit(body);
        case 'destroy': return this.destroyRequest(body);
        case 'enable':
        case 'disable': return this.enable(body, request === 'enable');
        case 'kick_all': return this.kickAll(body);
        case 'recording': return this.recording(body);
        default: throw new StreamingError(StreamingErrorCode.INVALID_REQUEST, `Unknown request '${request.slice(0, 64)}'`);
      }
    } catch (err) {
      return errorData(err, this.logger);
    }
  }

  private list(body: JsonObject): JsonObject {
    R.validate(body, R.LIST);
    let showPrivate = false;
    if (R.optString(body, 'admin_key') !== undefined && this.config.adminKey !== null) {
      checkSecret(this.config.adminKey, body, 'admin_key');
      showPrivate = true;
    }
    const now = this.clock.now();
    const list = [...this.mountpoints.values()].filter((mp) => !mp.destroyed && (showPrivate || !mp.config.is_private)).map((mp) => mp.listEntry(now));
    return { streaming: 'list', list };
  }

  private infoRequest(body: JsonObject): JsonObject {
    R.validate(body, R.INFO);
    const mp = this.mountpoint(body['id'] as number);
    return { streaming: 'info', info: mp.info(this.clock.now(), holdsSecret(mp.config.secret, body, 'secret')) };
  }

  private create(body: JsonObject, owner: StreamingHandle | null): JsonObject {
    if (this.config.adminKey !== null) checkSecret(this.config.adminKey, body, 'admin_key');
    const { mp, permanent } = this.createMountpoint(body, owner, true);
    return { streaming: 'created', created: mp.config.name, permanent, stream: mp.created() };
  }

  /** Validates a `create`, opens its ports and registers the mountpoint (stored when `permanent`). */
  private createMountpoint(body: JsonObject, owner: StreamingHandle | null, mayPersist: boolean): { mp: Mountpoint; permanent: boolean } {
    R.validate(body, R.CREATE);
    const type = String(body['type']).toLowerCase();
    if (type !== 'rtp') {
      throw new StreamingError(StreamingErrorCode.INVALID_ELEMENT, type === 'live' || type === 'ondemand' || type === 'rtsp'
        ? `Can't create '${type}' mountpoint: ferry only relays 'rtp' mountpoints`
        : `Unknown stream type '${type.slice(0, 32)}'`);
    }
    const permanent = mayPersist && body['permanent'] === true;
    if (permanent && !this.store) throw new StreamingError(StreamingErrorCode.UNKNOWN_ERROR, "No configuration file, can't create permanent mountpoint");
    const requested = R.optNumber(body, 'id');
    if (requested !== undefined && this.mountpoints.has(requested)) throw new StreamingError(StreamingErrorCode.CANT_CREATE, `A stream with the provided ID ${requested} already exists`);
    const id = requested ?? this.freshId();
    const name = R.optString(body, 'name') ?? `mp-${id}`;
    const config: MountpointConfig = {
      id,
      name,
      description: R.optString(body, 'description') ?? name,
      is_private: body['is_private'] === true,
      enabled: true,
      collision: R.optNumber(body, 'collision') ?? DEFAULT_COLLISION_MS,
      media: mediaOf(body),
    };
    for (const key of ['metadata', 'secret', 'pin'] as const) {
      const v = R.optString(body, key);
      if (v !== undefined) config[key] = v;
    }
    const suite = R.optNumber(body, 'srtpsuite');
    const crypto = R.optString(body, 'srtpcrypto');
    if (suite !== undefined || crypto !== undefined) {
      if (suite !== 32 && suite !== 80) throw invalid('srtpsuite', '32 or 80');
      if (crypto === undefined) throw missing('srtpcrypto');
      if (Buffer.from(crypto, 'base64').length !== 30) throw invalid('srtpcrypto', 'base64 of a 16-byte key and a 14-byte salt');
      config.srtpsuite = suite;
      config.srtpcrypto = crypto;
    }
    const mp = this.open(config, owner);
    if (permanent) {
      try {
        this.store?.put(mp.persisted());
      } catch (err) {
        this.mountpoints.delete(mp.id);
        mp.close(false);
        throw new StreamingError(StreamingErrorCode.UNKNOWN_ERROR, (err as Error).message);
      }
    }
    this.logger.info({ id, permanent, ports: mp.created()['ports'] }, 'streaming: mountpoint created');
    return { mp, permanent };
  }

  /** Opens a mountpoint's ports and registers it; 456 when a port cannot be had. */
  private open(config: MountpointConfig, owner: StreamingHandle | null): Mountpoint {
    if (!this.services) throw new StreamingError(StreamingErrorCode.CANT_CREATE, 'RTP media is not available in this build');
    const mp = Mountpoint.open(config, (purpose, port) => this.openLeg(owner, config, purpose, port), this.services.router, () => this.clock.now());
    this.mountpoints.set(config.id, mp);
    return mp;
  }

  /**
   * One ingest port. Asked for by a client (`owner`; null = configuration or Admin), it counts
   * against that client's peer_connections_per_client before it is leased, and is given back
   * when the port closes: creating mountpoints must not be a way around the port share.
   */
  private openLeg(owner: StreamingHandle | null, config: MountpointConfig, purpose: string, port: number): RtpLeg {
    const services = this.services;
    if (!services) throw new StreamingError(StreamingErrorCode.CANT_CREATE, 'RTP media is not available in this build');
    let release: (() => void) | null = null;
    if (owner && this.config.quotas) {
      try {
        release = this.config.quotas.acquirePeerConnection(owner.sessionId);
      } catch (err) {
        throw new StreamingError(StreamingErrorCode.UNAUTHORIZED, (err as Error).message);
      }
    }
    let leg: RtpLeg;
    try {
      leg = services.openRtpLeg({
        owner: `streaming:${config.id}:${purpose}`,
        pool: 'rtp',
        latch: true,
        placementGroup: placementGroup(config.id),
        ...(config.srtpsuite && config.srtpcrypto ? { srtp: sdesKeys({ suite: config.srtpsuite, crypto: config.srtpcrypto }) } : {}),
        ...(port !== 0 ? { port } : {}),
      });
    } catch (err) {
      release?.();
      throw new StreamingError(StreamingErrorCode.CANT_CREATE, `Can't add 'rtp' stream: ${(err as Error).message}`);
    }
    if (release) {
      const giveBack = release;
      const close = leg.close.bind(leg);
      leg.close = () => {
        close();
        giveBack();
      };
    }
    return leg;
  }

  private freshId(): number {
    const id = freshId((i) => this.mountpoints.has(i));
    if (id !== undefined) return id;
    throw new StreamingError(StreamingErrorCode.UNKNOWN_ERROR, 'Could not pick a free id');
  }

  private persist(mp: Mountpoint): void {
    if (!this.store) throw new StreamingError(StreamingErrorCode.UNKNOWN_ERROR, "No configuration file, can't edit mountpoint permanently");
    try {
      this.store.put(mp.persisted());
    } catch (err) {
      throw new StreamingError(StreamingErrorCode.UNKNOWN_ERROR, (err as Error).message);
    }
  }

  private edit(body: JsonObject): JsonObject {
    R.validate(body, R.EDIT);
    const mp = this.mountpoint(body['id'] as number);
    checkSecret(mp.config.secret, body, 'secret');
    const permanent = body['permanent'] === true;
    if (permanent && !this.store) throw new StreamingError(StreamingErrorCode.UNKNOWN_ERROR, "No configuration file, can't edit mountpoint permanently");
    const next = structuredClone(mp.config);
    const description = R.optString(body, 'new_description');
    if (description !== undefined && description.length > 0) next.description = description;
    const metadata = R.optString(body, 'new_metadata');
    const metadataChanged = metadata !== undefined && metadata !== next.metadata;
    if (metadata !== undefined) next.metadata = metadata;
    const isPrivate = R.optBool(body, 'new_is_private');
    if (isPrivate !== undefined) next.is_private = isPrivate;
    const secret = R.optString(body, 'new_secret');
    if (secret !== undefined && secret.length > 0) next.secret = secret;
    const pin = R.optString(body, 'new_pin');
    if (pin !== undefined) {
      if (pin.length > 0) next.pin = pin;
      else delete next.pin;
    }
    const previous = mp.config;
    mp.config = next;
    if (permanent) {
      try {
        this.persist(mp);
      } catch (err) {
        mp.config = previous;
        throw err;
      }
    }
    if (metadataChanged && body['edited_event'] === true) {
      for (const v of mp.viewers) v.notify({ streaming: 'edited', id: mp.id, metadata: next.metadata ?? null });
    }
    return { streaming: 'edited', id: mp.id, permanent };
  }

  private destroyRequest(body: JsonObject): JsonObject {
    R.validate(body, R.DESTROY);
    const mp = this.mountpoint(body['id'] as number);
    checkSecret(mp.config.secret, body, 'secret');
    if (body['permanent'] === true) {
      if (!this.store) throw new StreamingError(StreamingErrorCode.UNKNOWN_ERROR, "No configuration file, can't destroy mountpoint permanently");
      try {
        this.store.remove(mp.id);
      } catch (err) {
        throw new StreamingError(StreamingErrorCode.UNKNOWN_ERROR, (err as Error).message);
      }
    }
    this.mountpoints.delete(mp.id);
    mp.close(true);
    this.logger.info({ id: mp.id }, 'streaming: mountpoint destroyed');
    return { streaming: 'destroyed', id: mp.id };
  }

  private enable(body: JsonObject, enabled: boolean): JsonObject {
    R.validate(body, enabled ? R.ENABLE : R.DISABLE);
    const mp = this.mountpoint(body['id'] as number);
    checkSecret(mp.config.secret, body, 'secret');
    mp.setEnabled(enabled);
    return { streaming: 'ok' };
  }

  private kickAll(body: JsonObject): JsonObject {
    R.validate(body, R.KICK_ALL);
    const mp = this.mountpoint(body['id'] as number);
    checkSecret(mp.config.secret, body, 'secret');
    for (const v of [...mp.viewers]) v.mountpointGone();
    return { streaming: 'kicked_all' };
  }

  /** ferry writes no recordings: refused with a clear error rather than accepted and not done. */
  private recording(body: JsonObject): JsonObject {
    R.validate(body, R.RECORDING);
    const mp = this.mountpoint(body['id'] as number);
    checkSecret(mp.config.secret, body, 'secret');
    throw new StreamingError(StreamingErrorCode.CANT_RECORD, 'Recording is not supported by ferry');
  }

  /** Counts for tests and Admin: mountpoints, viewers, ports held. */
  stats(): { mountpoints: number; viewers: number; legs: number; handles: number } {
    let viewers = 0;
    let legs = 0;
    for (const mp of this.mountpoints.values()) {
      viewers += mp.viewers.size;
      legs += mp.legCount;
    }
    return { mountpoints: this.mountpoints.size, viewers, legs, handles: this.handles.size };
  }
}

/** A `create`'s streams: the `media` list, or the deprecated audio/video fields. */
function mediaOf(body: JsonObject): MediaConfig[] {
  const entries = R.objects(body, 'media');
  const media: MediaConfig[] = [];
  if (field(body, 'media') !== undefined) {
    for (const e of entries) {
      R.validate(e, R.RTP_MEDIA, 'media.');
      media.push(mediaEntry(e, media));
    }
  } else {
    if (body['audio'] === true) {
      R.validate(body, R.LEGACY_AUDIO);
      media.push(mediaEntry(legacy(body, 'audio', 'a'), media));
    }
    if (body['video'] === true) {
      R.validate(body, R.LEGACY_VIDEO);
      media.push(mediaEntry(legacy(body, 'video', 'v'), media));
    }
    if (body['data'] === true) throw new StreamingError(StreamingErrorCode.CANT_CREATE, "Can't add 'rtp' stream: ferry does not relay data channels");
  }
  if (media.length === 0) throw new StreamingError(StreamingErrorCode.CANT_CREATE, "Can't add 'rtp' stream, no audio or video have to be streamed...");
  return media;
}

/** The deprecated `audioport`/`videopt`/… fields as one `media` entry. */
function legacy(body: JsonObject, type: 'audio' | 'video', mid: string): JsonObject {
  const e: JsonObject = { type, mid, label: type };
  for (const [from, to] of [['port', 'port'], ['rtcpport', 'rtcpport'], ['pt', 'pt'], ['codec', 'codec'], ['rtpmap', 'rtpmap'], ['fmtp', 'fmtp'], ['simulcast', 'simulcast'], ['port2', 'port2'], ['port3', 'port3']]) {
    const v = field(body, `${type}${from}`);
    if (v !== undefined) e[to as string] = v;
  }
  return e;
}

/** One stream of a `create`: type, unique mid, a codec ferry knows for that type, payload type, ports. */
function mediaEntry(e: JsonObject, before: MediaConfig[]): MediaConfig {
  const type = String(e['type']).toLowerCase();
  if (type === 'data') throw new StreamingError(StreamingErrorCode.CANT_CREATE, "Can't add 'rtp' stream: ferry does not relay data channels");
  if (type !== 'audio' && type !== 'video') throw invalid('media.type', '"audio" or "video"');
  const mid = String(e['mid']);
  if (mid.length === 0 || mid.length > 32) throw invalid('media.mid', 'a string of 1 to 32 characters');
  if (before.some((m) => m.mid === mid)) throw new StreamingError(StreamingErrorCode.CANT_CREATE, `Can't add 'rtp' stream: duplicate mid '${mid}'`);
  const rtpmapName = R.optString(e, 'rtpmap')?.split('/')[0];
  const codec = (R.optString(e, 'codec') ?? rtpmapName)?.toLowerCase();
  if (codec === undefined) throw missing('media.codec');
  if (codecKind(codec) !== type || !(codec in CODECS)) throw invalid('media.codec', `a supported ${type} codec`);
  const pt = R.optNumber(e, 'pt') ?? DEFAULT_PT[codec] ?? (type === 'audio' ? 111 : 96);
  if (pt > 127 || (pt >= 64 && pt <= 95)) throw invalid('media.pt', 'a payload type 0-127 outside RTCP\'s 64-95 (RFC 5761 §4)');
  const simulcast = type === 'video' && e['simulcast'] === true;
  const ports = [R.optNumber(e, 'port') ?? 0];
  if (simulcast) ports.push(R.optNumber(e, 'port2') ?? 0, R.optNumber(e, 'port3') ?? 0);
  const config: MediaConfig = { type, mid, label: R.optString(e, 'label') ?? type, codec, pt, ports, simulcast };
  assignDefined(config, { msid: R.optString(e, 'msid'), fmtp: R.optString(e, 'fmtp'), rtcpport: R.optNumber(e, 'rtcpport') });
  return config;
}
