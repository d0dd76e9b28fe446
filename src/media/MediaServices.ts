// What plugins get to route media: engine operations on ids they hold, and
// plain RTP legs (one leased port each) for SIP, remote publishers and RTP
// forwarders. Every leg is a PortLease with one owner and one release path.
import { Recorder } from './Recorder.js';
import type { MediaRouter, MediaServices, RtpLeg, RtpLegOptions, SdesKeys, TelephoneEvent } from './Routing.js';
import type { PortLease, PortPool } from './PortPool.js';
import type { EngineEvent, MediaEngine, SrtpProfileName } from './MediaEngine.js';

export class EngineRouter implements MediaRouter {
  private readonly switchListeners = new Set<(output: number, source: number) => void>();
  private readonly temporalListeners = new Set<(output: number, layer: number | null) => void>();
  private readonly spatialListeners = new Set<(output: number, layer: number | null) => void>();
  private readonly telephoneEventListeners = new Set<(source: number, event: TelephoneEvent) => void>();

  constructor(private readonly engine: MediaEngine) {
    engine.on('event', (event: EngineEvent) => {
      if (event.type === 'output-switched') for (const listener of this.switchListeners) listener(event.output, event.source);
      else if (event.type === 'output-temporal') for (const listener of this.temporalListeners) listener(event.output, event.layer);
      else if (event.type === 'output-spatial') for (const listener of this.spatialListeners) listener(event.output, event.layer);
      else if (event.type === 'telephone-event') {
        const ev = { event: event.event, volume: event.volume, duration: event.duration };
        for (const listener of this.telephoneEventListeners) listener(event.source, ev);
      }
    });
  }

  setOutputPayloadMap(output: number, map: ReadonlyArray<{ from: number; to: number | null }>): void {
    this.engine.setOutputPayloadMap(output, map);
  }

  setTelephoneEvents(source: number, payloadType: number | null): void {
    this.engine.setTelephoneEvents(source, payloadType);
  }

  onTelephoneEvent(listener: (source: number, event: TelephoneEvent) => void): () => void {
    this.telephoneEventListeners.add(listener);
    return () => this.telephoneEventListeners.delete(listener);
  }

  setBitrateCap(source: number, bps: number | null): void {
    this.engine.setBitrateCap(source, bps);
  }

  sourceBitrate(source: number): number {
    return this.engine.sourceBitrate(source);
  }

  setOutputTemporal(output: number, layer: number | null): void {
    this.engine.setOutputTemporal(output, layer);
  }

  onOutputTemporal(listener: (output: number, layer: number | null) => void): () => void {
    this.temporalListeners.add(listener);
    return () => this.temporalListeners.delete(listener);
  }

  setOutputLayers(output: number, layers: { sources: number[]; preferred: number; temporalMax: number | null } | null): void {
    this.engine.setOutputLayers(output, layers);
  }

  setOutputSvc(output: number, spatial: number | null, temporal: number | null): void {
    this.engine.setOutputSvc(output, spatial, temporal);
  }

  onOutputSpatial(listener: (output: number, layer: number | null) => void): () => void {
    this.spatialListeners.add(listener);
    return () => this.spatialListeners.delete(listener);
  }

  onOutputSwitched(listener: (output: number, source: number) => void): () => void {
    this.switchListeners.add(listener);
    return () => this.switchListeners.delete(listener);
  }

  switchOutput(output: number, source: number | null, options?: { onKeyframe?: boolean }): void {
    this.engine.switchOutput(output, source, options);
  }

  pauseOutput(output: number, paused: boolean): void {
    this.engine.pauseOutput(output, paused);
  }

  requestKeyframe(source: number): void {
    this.engine.requestKeyframe(source);
  }

  sourcePackets(): Map<number, number> {
    const flat = this.engine.sourcePackets();
    const out = new Map<number, number>();
    for (let i = 0; i + 1 < flat.length; i += 2) out.set(flat[i]!, flat[i + 1]!);
    return out;
  }

  counters(id: number): { packets: number; bytes: number } | null {
    const stats = this.engine.stats();
    const found = stats.sources.find((s) => s.id === id) ?? stats.outputs.find((o) => o.id === id);
    return found ? { packets: found.packets, bytes: found.bytes } : null;
  }
}

class EngineRtpLeg implements RtpLeg {
  private readonly unknownListeners: Array<(info: { ssrc: number; payloadType: number }) => void> = [];
  private readonly lease: PortLease;

  constructor(
    private readonly engine: MediaEngine,
    pool: PortPool,
    options: RtpLegOptions,
  ) {
    this.lease = pool.lease(
      options.owner,
      {
        remoteAddress: options.remote?.address,
        remotePort: options.remote?.port,
        latch: options.latch ?? false,
        ...(options.placementGroup !== undefined ? { group: options.placementGroup } : {}),
      },
      (event) => {
        if (event.type === 'unknown-ssrc') {
          for (const l of this.unknownListeners) l({ ssrc: event.ssrc, payloadType: event.payloadType });
        }
      },
      options.port || undefined,
    );
    if (options.srtp) this.setSrtp(options.srtp);
    this.address = pool.options.bindAddress;
  }

  readonly address: string;

  get port(): number {
    return this.lease.port;
  }

  get closed(): boolean {
    return !this.lease.active;
  }

  private get endpoint(): number {
    if (!this.lease.active) throw new Error('RTP leg is closed');
    return this.lease.endpoint;
  }

  addSource(options: { ssrc: number; ssrcOffset?: number; kind: 'audio' | 'video'; clockRate: number; codec?: 'vp8' | 'vp9' | 'h264'; keyframeCache?: boolean }): number {
    const { keyframeCache, ...source } = options;
    const id = this.engine.addSource(this.endpoint, source);
    if (keyframeCache && options.kind === 'video') this.engine.setKeyframeCache(id, true);
    return id;
  }

  removeSource(source: number): void {
    this.engine.removeSource(source);
  }

  addOutput(options: { ssrc: number; payloadType?: number; source?: number | null }): number {
    return this.engine.addOutput(this.endpoint, { ssrc: options.ssrc, payloadType: options.payloadType, source: options.source ?? undefined });
  }

  removeOutput(output: number): void {
    this.engine.removeOutput(output);
  }

  setRemote(remote: { address: string; port: number } | null): void {
    this.engine.setRemote(this.endpoint, remote);
  }

  setSrtp(keys: SdesKeys | null): void {
    if (!keys) throw new Error('clearing SRTP on a leg is not supported: close it and open another');
    this.engine.setSrtp(this.endpoint, { ...keys, profile: keys.profile as SrtpProfileName });
  }

  onUnknownSsrc(listener: (info: { ssrc: number; payloadType: number }) => void): void {
    this.unknownListeners.push(listener);
  }

  close(): void {
    this.unknownListeners.length = 0;
    this.lease.release();
  }
}

export class EngineMediaServices implements MediaServices {
  readonly router: MediaRouter;
  readonly recorder: Recorder;

  constructor(
    private readonly engine: MediaEngine,
    private readonly pools: { rtp: PortPool; sip?: PortPool },
    recordings: { dir: string; protectedFolders?: readonly string[] } = { dir: 'recordings' },
  ) {
    this.router = new EngineRouter(engine);
    this.recorder = new Recorder(engine, recordings.dir, recordings.protectedFolders ?? []);
  }

  openRtpLeg(options: RtpLegOptions): RtpLeg {
    const pool = options.pool === 'sip' ? (this.pools.sip ?? this.pools.rtp) : this.pools.rtp;
    return new EngineRtpLeg(this.engine, pool, options);
  }
}
