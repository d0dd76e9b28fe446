// The core's MediaProvider for WebRTC: one PeerConnection per handle that
// negotiates media, all on one MediaEngine and one port pool. It also watches
// media flow (one engine stats read per second for all PeerConnections) to
// send Janus `media` events, and (with event handlers) reads the engine's counters once per
// stats period for every PeerConnection's media stats events.
import type { HandleMedia, MediaEvents, MediaProvider, MediaStreamInfo } from '../core/Media.js';
import type { MediaEngine, SrtpProfileName } from '../media/MediaEngine.js';
import { MediaStatsReader } from './MediaStatsReader.js';
import type { EndpointLeasePool } from '../media/PortPool.js';
import { DataChannelStats } from './DataChannels.js';
import type { DtlsCertificate } from './DtlsCertificate.js';
import { PeerConnection } from './PeerConnection.js';

export interface WebRtcMediaProviderOptions {
  engine: MediaEngine;
  ports: EndpointLeasePool;
  certificate: DtlsCertificate;
  candidateAddresses: string[];
  connectTimeoutMs: number;
  consentTimeoutMs: number;
  srtpProfiles?: SrtpProfileName[];
  /** Most m-lines a remote offer may have (`media.max_mlines`). */
  maxMLines?: number;
  /** ICE-TCP passive candidates (`media.ice_tcp`). */
  iceTcp?: boolean;
  /** Send-side bandwidth estimation (`media.bandwidth_estimation`); absent: off. */
  bandwidthEstimation?: { startBitrate: number; maxBitrate: number };
  /** Data channels (RFC 8831): largest message taken, bytes queued per association; absent: refused. */
  dataChannels?: { maxMessageSize: number; maxSendBuffer: number };
  /** How often media flow is sampled for `media` events. */
  mediaCheckIntervalMs?: number;
  /** Media stats for the event handlers every this many ms (`events.stats_period`); absent or 0: none. */
  mediaStatsPeriodMs?: number;
  log?: { warn(obj: object, msg: string): void; debug(obj: object, msg: string): void };
  /**
   * Admission of one PeerConnection for a session (per-client quota), asked before anything is
   * built or leased: throws to refuse, else returns the release called when it closes.
   */
  admit?: (sessionId: number) => () => void;
}

interface Watched {
  pc: PeerConnection;
  events: MediaEvents;
  /** Gives the admission back (quota). */
  release: (() => void) | undefined;
  /** Per mid: packets seen at the last check, and whether it was receiving. */
  flow: Map<string, { packets: number; receiving: boolean }>;
}

export class WebRtcMediaProvider implements MediaProvider {
  private readonly connections = new Map<PeerConnection, Watched>();
  private monitor: NodeJS.Timeout | null = null;
  private statsTimer: NodeJS.Timeout | null = null;
  private readonly statsReader: MediaStatsReader;
  /** checkMedia's scratch state: source id → packets received, and the connection being checked. */
  private readonly packetsBySource = new Map<number, number>();
  private checking: Watched | null = null;
  /** Every PeerConnection's data channels, counted together. */
  readonly dataChannelStats = new DataChannelStats();

  constructor(private readonly options: WebRtcMediaProviderOptions) {
    this.statsReader = new MediaStatsReader(options.engine);
  }

  get count(): number {
    return this.connections.size;
  }

  open(owner: { sessionId: number; handleId: number; placementGroup?: string }, events: MediaEvents): HandleMedia {
    const release = this.options.admit?.(owner.sessionId);
    const pc = new PeerConnection({
      ...(owner.placementGroup !== undefined ? { placementGroup: owner.placementGroup } : {}),
      engine: this.options.engine,
      ports: this.options.ports,
      certificate: this.options.certificate,
      owner: `session:${owner.sessionId}/handle:${owner.handleId}`,
      candidateAddresses: this.options.candidateAddresses,
      events,
      connectTimeoutMs: this.options.connectTimeoutMs,
      consentTimeoutMs: this.options.consentTimeoutMs,
      srtpProfiles: this.options.srtpProfiles,
      ...(this.options.maxMLines !== undefined ? { maxMLines: this.options.maxMLines } : {}),
      ...(this.options.bandwidthEstimation ? { bandwidthEstimation: this.options.bandwidthEstimation } : {}),
      ...(this.options.iceTcp ? { iceTcp: true } : {}),
      ...(this.options.dataChannels ? { dataChannels: { ...this.options.dataChannels, stats: this.dataChannelStats } } : {}),
      onClosed: (closed) => this.forget(closed),
      log: this.options.log,
    });
    this.connections.set(pc, { pc, events, release, flow: new Map() });
    this.startMonitor();
    return pc;
  }

  private forget(pc: PeerConnection): void {
    this.connections.get(pc)?.release?.();
    this.connections.delete(pc);
    this.statsReader.forget(pc);
    if (this.connections.size === 0 && this.monitor) {
      clearInterval(this.monitor);
      this.monitor = null;
    }
    if (this.connections.size === 0 && this.statsTimer) {
      clearInterval(this.statsTimer);
      this.statsTimer = null;
    }
  }

  private startMonitor(): void {
    const statsPeriodMs = this.options.mediaStatsPeriodMs ?? 0;
    if (!this.statsTimer && statsPeriodMs > 0) {
      this.statsTimer = setInterval(() => this.statsReader.report(this.connections.values(), statsPeriodMs), statsPeriodMs);
      this.statsTimer.unref();
    }
    if (this.monitor) return;
    this.monitor = setInterval(() => this.checkMedia(), this.options.mediaCheckIntervalMs ?? 1000);
    this.monitor.unref();
  }

  /**
   * Janus `media` events: receiving turns true on the first packets of an m-line, false when they
   * stop. Runs every second while media flows, so it reads only the sources' packet counts and
   * updates its records in place (no copies, no closure per connection): a forwarding room
   * leaves next to no garbage here.
   */
  private checkMedia(): void {
    let connected = false;
    for (const w of this.connections.values()) {
      if (w.pc.currentState === 'connected') {
        connected = true;
        break;
      }
    }
    if (!connected) return;
    let counts: Float64Array;
    try {
      counts = this.options.engine.sourcePackets();
    } catch {
      return;
    }
    const packetsBySource = this.packetsBySource;
    packetsBySource.clear();
    for (let i = 0; i + 1 < counts.length; i += 2) packetsBySource.set(counts[i]!, counts[i + 1]!);
    for (const w of this.connections.values()) {
      if (w.pc.currentState !== 'connected') continue;
      this.checking = w;
      w.pc.forEachStream(this.checkStream);
    }
    this.checking = null;
  }

  private readonly checkStream = (stream: Readonly<MediaStreamInfo>): void => {
    const w = this.checking;
    if (!w) return;
    let packets = 0;
    for (let i = 0; i < stream.sources.length; i++) packets += this.packetsBySource.get(stream.sources[i]!.source) ?? 0;
    let flow = w.flow.get(stream.mid);
    if (!flow) {
      flow = { packets: 0, receiving: false };
      w.flow.set(stream.mid, flow);
    }
    const receiving = packets > flow.packets;
    flow.packets = packets;
    if (receiving === flow.receiving) return;
    flow.receiving = receiving;
    w.events.mediaState({ mid: stream.mid, type: stream.kind, receiving });
  };

  /** Closes every PeerConnection (shutdown). */
  closeAll(reason: string): void {
    for (const w of [...this.connections.values()]) w.pc.close(reason);
  }
}
