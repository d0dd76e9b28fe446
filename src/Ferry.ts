// Builds a whole ferry from one configuration: the native media engine, the
// port pool, the DTLS certificate, the WebRTC media provider, the plugins and
// the Gateway (API transports). `npm start` and the end-to-end tests use this
// same function, so what is tested is what runs.
import { randomBytes } from 'node:crypto';
import { hostname, networkInterfaces } from 'node:os';

import type { Logger } from 'pino';

import { ConfigError, type FerryConfig } from './config/Config.js';
import { Gateway, type GatewayAddresses } from './Gateway.js';
import type { MediaThreadStatus } from './core/Status.js';
import { SystemClock, type Clock } from './time/Clock.js';
import { JanusError, JanusErrorCode } from './core/JanusError.js';
import { Quotas, isQuotaExceeded } from './core/Quotas.js';
import { createLogger } from './log/logger.js';
import { MediaEngine, type SrtpProfileName } from './media/MediaEngine.js';
import { EngineMediaServices } from './media/MediaServices.js';
import type { Plugin } from './core/Plugin.js';
import { SipPlugin } from './plugins/sip/SipPlugin.js';
import { StreamingPlugin } from './plugins/streaming/StreamingPlugin.js';
import { TextRoomPlugin } from './plugins/textroom/TextRoomPlugin.js';
import { VIDEOROOM_PACKAGE, VideoRoomPlugin } from './plugins/videoroom/VideoRoomPlugin.js';
import { ClusterNode } from './cluster/ClusterNode.js';
import { PortPool, type EndpointLeasePool } from './media/PortPool.js';
import { SlotPool } from './media/SlotPool.js';
import { DtlsCertificate } from './webrtc/DtlsCertificate.js';
import { createEventBus } from './events/createEventBus.js';
import { EventType } from './events/JanusEvents.js';
import { WebRtcMediaProvider } from './webrtc/WebRtcMediaProvider.js';

export interface FerryOptions {
  config: FerryConfig;
  logger?: Logger;
  clock?: Clock;
  /** Builds extra plugins once the media services exist. */
  plugins?: (services: EngineMediaServices) => Plugin[];
}

export interface Ferry {
  gateway: Gateway;
  engine: MediaEngine;
  ports: PortPool;
  /** The SIP plugin's own pool, when `sip.rtp_port_min/max` are set. */
  sipPorts: PortPool | undefined;
  /** Leases held in all pools. */
  leasedPorts(): number;
  webrtc: WebRtcMediaProvider;
  services: EngineMediaServices;
  /** This node of a ferry cluster (config `cluster.redis_url`); null when it stands alone. */
  cluster: ClusterNode | null;
  start(): Promise<GatewayAddresses>;
  /** Ends every session through the one ending path, then closes the engine. Idempotent. */
  stop(): Promise<void>;
}

/** Host candidates: configured ones, else the bind address, else this host's non-internal IPv4 addresses. */
export function candidateAddresses(config: FerryConfig['media']): string[] {
  if (config.candidate_addresses) {
    return config.candidate_addresses.split(',').map((s) => s.trim()).filter(Boolean);
  }
  if (config.bind !== '0.0.0.0' && config.bind !== '::') return [config.bind];
  const found: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal) continue;
      if (a.family === 'IPv4') found.push(a.address);
      // Global IPv6 only: a link-local address needs a scope a remote peer cannot give.
      else if (config.ipv6 && a.family === 'IPv6' && !/^fe80:/i.test(a.address)) found.push(a.address);
    }
  }
  return found.length ? found : ['127.0.0.1'];
}

/**
 * What WebRTC peers are told to reach: the public addresses of `nat_1_1_mapping` in place of
 * the host's (or before them, with `keep_private_host`), else the host candidates.
 */
export function webrtcCandidates(config: FerryConfig['media']): string[] {
  const own = candidateAddresses(config);
  if (!config.nat_1_1_mapping) return own;
  const mapped = config.nat_1_1_mapping.split(',').map((s) => s.trim()).filter(Boolean);
  return config.keep_private_host ? [...mapped, ...own.filter((a) => !mapped.includes(a))] : mapped;
}

/** The address media sockets bind to: dual-stack `::` for the wildcard when IPv6 is on. */
export function mediaBind(config: FerryConfig['media']): string {
  return config.ipv6 && config.bind === '0.0.0.0' ? '::' : config.bind;
}

/** The plugins `npm start` runs (echotest is built into the Gateway). */
export function defaultPlugins(config: FerryConfig, services: EngineMediaServices, logger: Logger, quotas?: Quotas): Plugin[] {
  const v = config.videoroom;
  const sip = config.sip;
  const sipHost = sip.bind ?? candidateAddresses(config.media)[0] ?? '127.0.0.1';
  return [
    new SipPlugin({
      media: services,
      logger: logger.child({ plugin: 'sip' }),
      config: {
        bind: sipHost, sdp_ip: sip.sdp_ip ?? sipHost, register_ttl: sip.register_ttl, user_agent: sip.user_agent,
        keepalive_interval: sip.keepalive_interval,
        ...(sip.tls_cert !== null ? { tls_cert: sip.tls_cert } : {}),
        ...(sip.tls_key !== null ? { tls_key: sip.tls_key } : {}),
        ...(sip.tls_ca !== null ? { tls_ca: sip.tls_ca } : {}),
      },
    }),
    new VideoRoomPlugin({
      media: services,
      logger: logger.child({ plugin: 'videoroom' }),
      config: {
        roomsFile: v.rooms_file,
        adminKey: v.admin_key,
        lockRtpForward: v.lock_rtp_forward,
        maxRooms: config.quotas.max_rooms,
        maxDescriptionLength: v.max_description_length,
        quotas: quotas ?? null,
        // Janus's sample room, with talking events on for the demo page.
        // No bitrate cap (Janus's sample room has 128 kbit/s, which ferry would enforce with REMB and
        // which would keep Chrome on its lowest simulcast layer).
        rooms: v.demo_room ? [{ room: 1234, description: 'Demo Room', publishers: 6, bitrate: 0, fir_freq: 10, audiolevel_event: true }] : [],
      },
    }),
    new StreamingPlugin({
      media: services,
      logger: logger.child({ plugin: 'streaming' }),
      config: {
        mountpointsFile: config.streaming.mountpoints_file,
        adminKey: config.streaming.admin_key,
        quotas: quotas ?? null,
        mountpoints: config.streaming.demo_mountpoint ? [DEMO_MOUNTPOINT] : [],
      },
    }),
    new TextRoomPlugin({
      logger: logger.child({ plugin: 'textroom' }),
      config: {
        roomsFile: config.textroom.rooms_file,
        adminKey: config.textroom.admin_key,
        maxRooms: config.quotas.max_rooms,
        quotas: quotas ?? null,
        // Janus's sample room (janus.plugin.textroom.jcfg), secret included.
        rooms: config.textroom.demo_room ? [{ room: 1234, description: 'Demo Room', secret: 'adminpwd' }] : [],
      },
    }),
  ];
}

/** Janus's sample mountpoint 1 (Opus pt 111, VP8 pt 100), on ports of the media range rather than 5002/5004. */
const DEMO_MOUNTPOINT = {
  request: 'create',
  type: 'rtp',
  id: 1,
  name: 'demo',
  description: 'Opus/VP8 live stream coming from an external source',
  media: [
    { type: 'audio', mid: 'a', label: 'Audio stream', codec: 'opus', pt: 111, port: 0 },
    { type: 'video', mid: 'v', label: 'Video stream', codec: 'vp8', pt: 100, port: 0 },
  ],
};

/** Endpoint counters that count a dropped packet, whatever the reason. */
const DROP_COUNTERS = [
  'txFailed', 'stunDropped', 'srtpAuthFailures', 'srtpReplays', 'srtpOtherFailures', 'srtcpFailures', 'rtpMalformed',
  'rtcpMalformed', 'unknownSsrc', 'unvalidatedDrops', 'noRemoteDrops', 'noSrtpDrops', 'demuxUnknown',
] as const;

/** Each media thread's load, packets, drops and hand-over queue, for Admin and /metrics. */
function mediaThreads(engine: MediaEngine): MediaThreadStatus[] {
  const stats = engine.stats();
  const threads: MediaThreadStatus[] = stats.workers.map((w) => ({
    thread: w.worker,
    load_pps: w.loadPps,
    busy: w.busyPermille / 1000,
    endpoints: w.endpoints,
    packets_in: 0,
    packets_out: 0,
    drops: 0,
    queue_depth: w.queueDepth,
    queue_overflows: w.queueOverflows,
    coalescing_wakes: w.coalescingWakes,
    cross_sent: w.crossSent,
    cross_received: w.crossReceived,
    remote_feeds: w.remoteFeeds,
    subscriptions: w.subscriptions,
  }));
  for (const ep of stats.endpoints) {
    const t = threads[ep.worker];
    if (!t) continue;
    t.packets_in += ep.rxPackets;
    t.packets_out += ep.txPackets;
    for (const key of DROP_COUNTERS) t.drops += ep[key];
  }
  for (const out of stats.outputs) {
    const t = threads[out.worker];
    if (t) t.drops += out.dropped;
  }
  return threads;
}

/** Every endpoint counter of the engine summed, plus caught media-thread panics. */
function engineTotals(engine: MediaEngine): Record<string, number> {
  const stats = engine.stats();
  const totals: Record<string, number> = {};
  for (const ep of stats.endpoints) {
    for (const [key, value] of Object.entries(ep)) {
      if (key === 'id' || key === 'port' || typeof value !== 'number') continue;
      totals[key] = (totals[key] ?? 0) + value;
    }
  }
  totals['panics'] = stats.workers.reduce((n, w) => n + w.panics, 0);
  // What outputs (subscribers' streams) sent and did not: paused, waiting for a keyframe,
  // no address or keys yet, or lost between media threads.
  totals['outputPackets'] = stats.outputs.reduce((n, o) => n + o.packets, 0);
  totals['outputDropped'] = stats.outputs.reduce((n, o) => n + o.dropped, 0);
  totals['outputQueueDrops'] = stats.outputs.reduce((n, o) => n + o.queueDrops, 0);
  // Loss repair toward subscribers: NACKed sequence numbers, retransmissions, and misses.
  totals['outputNacked'] = stats.outputs.reduce((n, o) => n + o.nacked, 0);
  totals['outputRetransmitted'] = stats.outputs.reduce((n, o) => n + o.retransmitted, 0);
  totals['outputRtxMissed'] = stats.outputs.reduce((n, o) => n + o.rtxMissed, 0);
  // Recordings: files open, what the writer wrote, and what it could not (a full queue, a
  // failed write such as a full disk).
  const rec = engine.recorderStats();
  totals['recordingsOpen'] = rec.openFiles;
  totals['recordingPackets'] = rec.packetsWritten;
  totals['recordingBytes'] = rec.bytesWritten;
  totals['recordingDropped'] = rec.packetsDropped + rec.packetsOversized;
  totals['recordingWriteErrors'] = rec.writeErrors;
  totals['recordingPanics'] = rec.panics;
  return totals;
}

export async function createFerry(options: FerryOptions): Promise<Ferry> {
  const { config } = options;
  const logger = options.logger ?? createLogger(config.log.level);
  const certificate = await DtlsCertificate.generate();
  const sharedPorts = singlePorts(config.media.single_port);
  // Before the engine: a bad event filter is a ConfigError with nothing to close.
  const events = createEventBus(config, logger);
  const engine = new MediaEngine({
    workers: config.media.workers,
    pinThreads: config.media.pin_threads,
    placement: config.media.placement,
    ...(sharedPorts ? { sharedPorts: { address: mediaBind(config.media), ports: sharedPorts } } : {}),
  });
  // A pool that cannot be made (a bad range) closes the engine it would lease from.
  const portPool = (name: string, min: number, max: number): PortPool => {
    try {
      return new PortPool(engine, { name, range: { min, max }, bindAddress: mediaBind(config.media) });
    } catch (err) {
      engine.close();
      throw err;
    }
  };
  const ports = portPool('rtp', config.media.rtp_port_min, config.media.rtp_port_max);
  const mediaLog = logger.child({ component: 'webrtc' });
  const clock = options.clock ?? new SystemClock();
  const quotas = new Quotas(config.quotas, clock);
  engine.on('event', (event: { type: string; message?: string }) => {
    if (event.type === 'worker-panic') logger.error({ event }, 'media thread caught a panic');
  });
  // Single-port mode: PeerConnections take slots on their media thread's shared port, as many
  // as the rtp range has ports; the range itself stays for plain RTP legs.
  const peerSlots: EndpointLeasePool = sharedPorts
    ? new SlotPool(engine, { name: 'webrtc', range: { min: config.media.rtp_port_min, max: config.media.rtp_port_max }, bindAddress: mediaBind(config.media) })
    : ports;
  const webrtc = new WebRtcMediaProvider({
    engine,
    ports: peerSlots,
    certificate,
    candidateAddresses: webrtcCandidates(config.media),
    connectTimeoutMs: config.media.connect_timeout * 1000,
    consentTimeoutMs: config.media.consent_timeout * 1000,
    srtpProfiles: config.media.srtp_profiles.split(',') as SrtpProfileName[],
    maxMLines: config.media.max_mlines,
    iceTcp: config.media.ice_tcp,
    mediaStatsPeriodMs: events.wants(EventType.media) ? config.events.stats_period * 1000 : 0,
    ...(config.media.data_channels
      ? { dataChannels: { maxMessageSize: config.media.datachannel_max_message_size, maxSendBuffer: config.media.datachannel_send_buffer } }
      : {}),
    ...(config.media.bandwidth_estimation ? { bandwidthEstimation: { startBitrate: config.media.bwe_start_bitrate, maxBitrate: config.media.bwe_max_bitrate } } : {}),
    log: { warn: (o, m) => mediaLog.warn(o, m), debug: (o, m) => mediaLog.debug(o, m) },
    // Before any port is leased. 490 is what Janus answers when it cannot set up a handle's
    // ICE/PeerConnection ("Error setting ICE locally").
    admit: (sessionId) => {
      try {
        return quotas.acquirePeerConnection(sessionId);
      } catch (err) {
        if (isQuotaExceeded(err)) throw new JanusError(JanusErrorCode.UNKNOWN, err.message);
        throw err;
      }
    },
  });
  // The SIP plugin's own range when configured (as Janus's sip.jcfg rtp_port_range); else the media range.
  const sipPorts = config.sip.rtp_port_min !== null && config.sip.rtp_port_max !== null
    ? portPool('sip', config.sip.rtp_port_min, config.sip.rtp_port_max)
    : undefined;
  const pools: EndpointLeasePool[] = [...(peerSlots !== ports ? [peerSlots] : []), ports, ...(sipPorts ? [sipPorts] : [])];
  const services = new EngineMediaServices(engine, { rtp: ports, sip: sipPorts }, {
    dir: config.recordings.dir,
    protectedFolders: config.recordings.protected_folders.split(',').map((f) => f.trim()),
  });
  let stopped: Promise<void> | null = null;
  const closeMedia = () => {
    webrtc.closeAll('Gateway shutdown');
    // Files still open (the plugins closed theirs as their handles ended) are closed whole.
    services.recorder.stopAll();
    for (const pool of pools) pool.releaseAll();
    engine.close();
  };
  const gateway = new Gateway({
    config,
    logger,
    clock,
    quotas,
    media: webrtc,
    services,
    plugins: options.plugins ? options.plugins(services) : defaultPlugins(config, services, logger, quotas),
    events,
    resources: {
      peerConnections: () => webrtc.count,
      nativeEndpoints: () => engine.endpointCount(),
      portLeases: () => pools.reduce((n, p) => n + p.leased, 0),
      engineCounters: () => engineTotals(engine),
      mediaThreads: () => mediaThreads(engine),
      dataChannels: () => webrtc.dataChannelStats.snapshot(),
      portPools: () =>
        pools.map((pool) => ({
          name: pool.options.name,
          range: pool instanceof SlotPool ? `single port ${sharedPorts?.join(',')}, ${pool.size} slots` : `${pool.options.range.min}-${pool.options.range.max}`,
          leased: pool.leased,
          free: pool.free,
          leases: pool.list().map((l) => ({ port: l.port, owner: l.owner, since: l.since })),
        })),
    },
    onStop: closeMedia,
  });
  const cluster = config.cluster.redis_url ? createClusterNode(config, gateway, logger, engine, pools) : null;
  if (cluster) {
    gateway.setResourceCounts({ cluster: () => cluster.status(), clusterGauges: () => ({ ...cluster.gauges() }) });
  }
  return {
    gateway,
    engine,
    ports,
    sipPorts,
    webrtc,
    services,
    cluster,
    leasedPorts: () => pools.reduce((n, p) => n + p.leased, 0),
    start: async () => {
      // The directory first: a node that cannot reach it does not serve rooms it cannot see.
      if (cluster) {
        try {
          await cluster.start();
        } catch (err) {
          await gateway.stop().finally(closeMedia);
          throw err;
        }
      }
      try {
        return await gateway.start();
      } catch (err) {
        await cluster?.stop();
        throw err;
      }
    },
    stop: () => {
      // Sessions end first (their participants leave the directory), then the node leaves it.
      cluster?.pause();
      stopped ??= gateway
        .stop()
        .finally(closeMedia)
        .finally(() => cluster?.stop());
      return stopped;
    },
  };
}

/** The cluster node of `cluster.redis_url`: the VideoRoom plugin's link to the other nodes. */
function createClusterNode(config: FerryConfig, gateway: Gateway, logger: Logger, engine: MediaEngine, pools: EndpointLeasePool[]): ClusterNode {
  const plugin = gateway.plugins.get(VIDEOROOM_PACKAGE);
  if (!(plugin instanceof VideoRoomPlugin)) throw new ConfigError('cluster: the VideoRoom plugin is not loaded');
  const c = config.cluster;
  return new ClusterNode({
    redisUrl: c.redis_url ?? '',
    nodeId: c.node_id ?? `${hostname()}-${randomBytes(3).toString('hex')}`,
    advertise: c.advertise ?? candidateAddresses(config.media)[0] ?? '127.0.0.1',
    leaseTtlMs: c.lease_ttl * 1000,
    plugin,
    logger,
    load: () => {
      const threads = mediaThreads(engine);
      return {
        sessions: gateway.registry.sessionCount,
        ports_free: pools.reduce((n, p) => n + p.free, 0),
        media_load_pps: threads.reduce((n, t) => n + t.load_pps, 0),
        media_busy_max: threads.reduce((m, t) => Math.max(m, t.busy), 0),
      };
    },
  });
}

/** `media.single_port` as ports (null: off). */
function singlePorts(value: string | null): number[] | null {
  if (value === null) return null;
  const ports = value.split(',').map((p) => Number(p.trim()));
  if (ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) throw new ConfigError(`media.single_port: ${value} is not a port or a list of ports`);
  return ports;
}
