/**
 * A fake of ferry's media seam for VideoRoom tests: PeerConnections
 * (`HandleMedia` + `RoutableMedia`), the router and plain RTP legs backed by
 * a counting port pool. It records every router call and keeps the engine's
 * id tables, so tests can check exactly which output is fed by which source
 * and that nothing leaks. Only this file is replaced when the tests move to
 * the real engine.
 */
import * as sdpTransform from 'sdp-transform';
import type { JsonObject } from '../../src/core/Json.js';
import type { DataOfferSection, HandleMedia, Jsep, MediaEvents, MediaProvider, MediaStreamInfo, OfferSection, RoutableMedia, TrickleCandidate } from '../../src/core/Media.js';
import type { MediaRouter, MediaServices, RtpLeg, RtpLegOptions, SdesKeys } from '../../src/media/Routing.js';

/** The engine's tables: every source and output id, and which source feeds which output. */
export class FakeEngine {
  private nextId = 1;
  readonly sources = new Map<number, { owner: string; ssrc: number; ssrcOffset: number }>();
  readonly outputs = new Map<number, { owner: string; source: number | null; paused: boolean }>();

  addSource(owner: string, ssrc: number, ssrcOffset = 0): number {
    const id = this.nextId++;
    this.sources.set(id, { owner, ssrc, ssrcOffset });
    return id;
  }

  addOutput(owner: string, source: number | null): number {
    if (source !== null && !this.sources.has(source)) throw new Error(`addOutput: unknown source ${source}`);
    const id = this.nextId++;
    this.outputs.set(id, { owner, source, paused: false });
    return id;
  }

  /** Removes everything an owner (a PeerConnection or a leg) had, as closing its endpoint does. */
  release(owner: string): void {
    for (const [id, s] of this.sources) if (s.owner === owner) this.sources.delete(id);
    for (const [id, o] of this.outputs) if (o.owner === owner) this.outputs.delete(id);
    // Outputs elsewhere fed by a removed source now get nothing (the engine drops the route).
    for (const o of this.outputs.values()) if (o.source !== null && !this.sources.has(o.source)) o.source = null;
  }
}

export type RouterCall =
  | { op: 'switch'; output: number; source: number | null }
  | { op: 'pause'; output: number; paused: boolean }
  | { op: 'keyframe'; source: number };

export class FakeRouter implements MediaRouter {
  readonly calls: RouterCall[] = [];

  constructor(private readonly engine: FakeEngine) {}

  switchOutput(output: number, source: number | null): void {
    const o = this.engine.outputs.get(output);
    if (!o) throw new Error(`switchOutput: unknown output ${output}`);
    if (source !== null && !this.engine.sources.has(source)) throw new Error(`switchOutput: unknown source ${source}`);
    o.source = source;
    this.calls.push({ op: 'switch', output, source });
  }

  pauseOutput(output: number, paused: boolean): void {
    const o = this.engine.outputs.get(output);
    if (!o) throw new Error(`pauseOutput: unknown output ${output}`);
    o.paused = paused;
    this.calls.push({ op: 'pause', output, paused });
  }

  requestKeyframe(source: number): void {
    if (!this.engine.sources.has(source)) throw new Error(`requestKeyframe: unknown source ${source}`);
    this.calls.push({ op: 'keyframe', source });
  }

  counters(id: number): { packets: number; bytes: number } | null {
    return this.engine.sources.has(id) || this.engine.outputs.has(id) ? { packets: 0, bytes: 0 } : null;
  }

  readonly switchListeners = new Set<(output: number, source: number) => void>();

  onOutputSwitched(listener: (output: number, source: number) => void): () => void {
    this.switchListeners.add(listener);
    return () => this.switchListeners.delete(listener);
  }

  /** The keyframe a pending `onKeyframe` switch waited for arrived (what the engine reports). */
  completeSwitch(output: number, source: number): void {
    for (const listener of this.switchListeners) listener(output, source);
  }

  switches(): { output: number; source: number | null }[] {
    return this.calls.filter((c): c is Extract<RouterCall, { op: 'switch' }> => c.op === 'switch').map(({ output, source }) => ({ output, source }));
  }
}

let peerCounter = 0;

/** A PeerConnection double: answers offers, makes offers, reports m-lines with engine ids. */
export class FakePeer implements HandleMedia, RoutableMedia {
  readonly name = `pc${++peerCounter}`;
  readonly remote: Jsep[] = [];
  readonly offersMade: OfferSection[][] = [];
  answersMade = 0;
  closedWith: string | null = null;
  private infos: MediaStreamInfo[] = [];
  private readonly listeners = new Set<() => void>();
  private localSdp: string | null = null;

  constructor(readonly owner: { sessionId: number; handleId: number }, readonly events: MediaEvents, private readonly engine: FakeEngine) {}

  setRemoteDescription(jsep: Jsep): void {
    if (this.closedWith !== null) throw new Error('closed');
    this.remote.push(jsep);
  }

  prepareLocalDescription(jsep: Jsep): Jsep {
    if (jsep.sdp !== this.localSdp) throw new Error('local description was not made by this PeerConnection');
    return { ...jsep, sdp: `${jsep.sdp}a=ice-ufrag:fake\r\n` };
  }

  /** Answers the offer it is given: first codec per m-line, one source per SSRC or rid. */
  createAnswer(offer: Jsep): Jsep {
    if (offer.type !== 'offer') throw new Error('createAnswer needs an offer');
    const parsed = sdpTransform.parse(offer.sdp);
    if (!parsed.media?.length) throw new Error('no m-lines');
    this.engine.release(this.name);
    const infos: MediaStreamInfo[] = [];
    // Data m-lines are accepted, as the real PeerConnection does with data channels on.
    const dataMids: string[] = [];
    parsed.media.forEach((m, index) => {
      if (m.type === 'application' && m.port !== 0) dataMids.push(String(m.mid ?? index));
      if (m.type !== 'audio' && m.type !== 'video') return;
      const mid = String(m.mid ?? index);
      const rtp = m.rtp?.[0];
      const codec = m.port === 0 || !rtp ? null : { name: rtp.codec, payloadType: rtp.payload, clockRate: rtp.rate ?? 0, ...(rtp.encoding ? { channels: Number(rtp.encoding) } : {}), ...(m.fmtp?.find((f) => f.payload === rtp.payload) ? { fmtp: m.fmtp.find((f) => f.payload === rtp.payload)!.config } : {}) };
      const sources: MediaStreamInfo['sources'] = [];
      if (codec) {
        const rids = (m.rids ?? []).filter((r) => r.direction === 'send');
        if (rids.length) {
          rids.forEach((r, i) => sources.push({ ssrc: 5000 + index * 10 + i, source: this.engine.addSource(this.name, 5000 + index * 10 + i), rid: String(r.id) }));
        } else {
          const seen = new Set<number>();
          for (const s of m.ssrcs ?? []) {
            const ssrc = Number(s.id);
            if (seen.has(ssrc)) continue;
            seen.add(ssrc);
            sources.push({ ssrc, source: this.engine.addSource(this.name, ssrc) });
          }
        }
      }
      infos.push({ mid, index, kind: m.type, codec, sources, output: null, outputSsrc: null });
    });
    this.infos = infos;
    this.answersMade++;
    this.localSdp = `v=0\r\no=- 1 ${this.answersMade} IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n${infos.map((i) => `m=${i.kind} 9 UDP/TLS/RTP/SAVPF ${i.codec?.payloadType ?? 0}\r\na=mid:${i.mid}\r\n${i.codec ? `a=rtpmap:${i.codec.payloadType} ${i.codec.name}/${i.codec.clockRate}\r\na=recvonly\r\n` : 'a=inactive\r\n'}`).join('')}${dataMids.map((mid) => `m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:${mid}\r\na=sctp-port:5000\r\n`).join('')}`;
    this.notify();
    return { type: 'answer', sdp: this.localSdp };
  }

  createOffer(all: (OfferSection | DataOfferSection)[]): Jsep {
    if (this.closedWith !== null) throw new Error('closed');
    const sections = all.filter((s): s is OfferSection => s.kind !== 'data');
    this.offersMade.push(sections.map((s) => ({ ...s })));
    const previous = new Map(this.infos.map((i) => [i.mid, i]));
    const infos: MediaStreamInfo[] = sections.map((s, index) => {
      const mid = s.mid ?? String(index);
      const prev = previous.get(mid);
      const output = prev?.output ?? this.engine.addOutput(this.name, null);
      return { mid, index, kind: s.kind, codec: { ...s.codec, payloadType: s.codec.payloadType ?? 96 + index }, sources: [], output, outputSsrc: 7000 + index };
    });
    for (const [mid, prev] of previous) if (!infos.some((i) => i.mid === mid) && prev.output !== null) this.engine.outputs.delete(prev.output);
    this.infos = infos;
    this.localSdp = `v=0\r\no=- 2 ${this.offersMade.length} IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n${infos.map((i, k) => `m=${i.kind} 9 UDP/TLS/RTP/SAVPF ${i.codec?.payloadType}\r\na=mid:${i.mid}\r\na=rtpmap:${i.codec?.payloadType} ${i.codec?.name}/${i.codec?.clockRate}\r\na=${sections[k]?.direction}\r\n`).join('')}`;
    this.notify();
    return { type: 'offer', sdp: this.localSdp };
  }

  addRemoteCandidates(_candidates: TrickleCandidate[]): void {}

  streams(): MediaStreamInfo[] {
    return this.infos.map((i) => ({ ...i, sources: [...i.sources] }));
  }

  onStreamsChanged(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  /** What the publisher asked to meter (null: off), and where levels go. */
  audioMetering: { packets: number; listener: (mid: string, level: number) => void } | null = null;

  meterAudioLevels(options: { packets: number } | null, listener?: (mid: string, level: number) => void): void {
    this.audioMetering = options && listener ? { packets: options.packets, listener } : null;
  }

  /** An average level as the engine would report it (only while metering is on). */
  emitAudioLevel(mid: string, level: number): void {
    this.audioMetering?.listener(mid, level);
  }

  /** ICE + DTLS done (what the transport reports when the real peer connects). */
  up(): void {
    this.events.webrtcUp();
  }

  /** The engine learned a new SSRC on an m-line (e.g. a simulcast layer's first packet). */
  learnSource(mid: string, ssrc: number, rid?: string): number {
    const info = this.infos.find((i) => i.mid === mid);
    if (!info) throw new Error(`no m-line ${mid}`);
    const source = this.engine.addSource(this.name, ssrc);
    info.sources.push({ ssrc, source, ...(rid !== undefined ? { rid } : {}) });
    this.notify();
    return source;
  }

  close(reason: string): void {
    if (this.closedWith !== null) return;
    this.closedWith = reason;
    this.engine.release(this.name);
    for (const i of this.infos) {
      i.sources = [];
      i.output = null;
    }
    this.notify();
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  describe(): JsonObject {
    return { fake: true, name: this.name };
  }
}

export class FakeProvider implements MediaProvider {
  readonly peers: FakePeer[] = [];

  constructor(private readonly engine: FakeEngine) {}

  open(owner: { sessionId: number; handleId: number }, events: MediaEvents): HandleMedia {
    const peer = new FakePeer(owner, events, this.engine);
    this.peers.push(peer);
    return peer;
  }

  forHandle(handleId: number): FakePeer {
    const peer = [...this.peers].reverse().find((p) => p.owner.handleId === handleId);
    if (!peer) throw new Error(`no PeerConnection for handle ${handleId}`);
    return peer;
  }

  get openCount(): number {
    return this.peers.filter((p) => p.closedWith === null).length;
  }
}

/** A port range of `size` ports; leasing beyond it throws like PortPool does. */
export class CountingPortPool {
  private readonly free: number[] = [];
  readonly owners = new Map<number, string>();
  maxLeased = 0;
  leasesMade = 0;

  constructor(readonly min: number, readonly size: number) {
    for (let p = min; p < min + size; p++) this.free.push(p);
  }

  lease(owner: string, port?: number): number {
    let chosen: number | undefined;
    if (port !== undefined && port !== 0) {
      const i = this.free.indexOf(port);
      if (i < 0) throw new Error(`port ${port} is not free`);
      chosen = this.free.splice(i, 1)[0];
    } else {
      chosen = this.free.shift();
    }
    if (chosen === undefined) throw new Error(`no free UDP port in the rtp range ${this.min}-${this.min + this.size - 1}`);
    this.owners.set(chosen, owner);
    this.leasesMade++;
    this.maxLeased = Math.max(this.maxLeased, this.owners.size);
    return chosen;
  }

  release(port: number): void {
    if (!this.owners.delete(port)) throw new Error(`port ${port} released twice`);
    this.free.push(port);
  }

  get leased(): number {
    return this.owners.size;
  }
}

export class FakeLeg implements RtpLeg {
  readonly address = '127.0.0.1';
  readonly port: number;
  private isClosed = false;
  remote: { address: string; port: number } | null;
  srtp: SdesKeys | null;
  readonly sourceIds = new Set<number>();
  readonly outputIds = new Set<number>();
  private readonly unknownListeners: Array<(info: { ssrc: number; payloadType: number }) => void> = [];

  constructor(readonly options: RtpLegOptions & { port?: number }, private readonly pool: CountingPortPool, private readonly engine: FakeEngine, readonly name: string) {
    this.port = pool.lease(options.owner, options.port);
    this.remote = options.remote ?? null;
    this.srtp = options.srtp ?? null;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  private live(): void {
    if (this.isClosed) throw new Error(`RTP leg ${this.options.owner} is closed`);
  }

  addSource(options: { ssrc: number; ssrcOffset?: number; kind: 'audio' | 'video'; clockRate: number }): number {
    this.live();
    const id = this.engine.addSource(this.name, options.ssrc, options.ssrcOffset ?? 0);
    this.sourceIds.add(id);
    return id;
  }

  removeSource(source: number): void {
    this.live();
    this.sourceIds.delete(source);
    this.engine.sources.delete(source);
    for (const o of this.engine.outputs.values()) if (o.source === source) o.source = null;
  }

  addOutput(options: { ssrc: number; payloadType?: number; source?: number | null }): number {
    this.live();
    const id = this.engine.addOutput(this.name, options.source ?? null);
    this.outputIds.add(id);
    return id;
  }

  removeOutput(output: number): void {
    this.live();
    this.outputIds.delete(output);
    this.engine.outputs.delete(output);
  }

  setRemote(remote: { address: string; port: number } | null): void {
    this.live();
    this.remote = remote;
  }

  setSrtp(keys: SdesKeys | null): void {
    this.live();
    this.srtp = keys;
  }

  onUnknownSsrc(listener: (info: { ssrc: number; payloadType: number }) => void): void {
    this.unknownListeners.push(listener);
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.engine.release(this.name);
    this.pool.release(this.port);
  }
}

export class FakeServices implements MediaServices {
  readonly router: FakeRouter;
  readonly legs: FakeLeg[] = [];
  private legCounter = 0;

  constructor(readonly engine: FakeEngine, readonly pool: CountingPortPool) {
    this.router = new FakeRouter(engine);
  }

  openRtpLeg(options: RtpLegOptions): RtpLeg {
    const leg = new FakeLeg(options, this.pool, this.engine, `leg${++this.legCounter}`);
    this.legs.push(leg);
    return leg;
  }

  get openLegs(): FakeLeg[] {
    return this.legs.filter((l) => !l.closed);
  }

  /** Forgets closed legs so long churn tests keep memory flat. */
  pruneClosed(): void {
    for (let i = this.legs.length - 1; i >= 0; i--) if (this.legs[i]?.closed) this.legs.splice(i, 1);
  }
}

/** One engine, provider and services sharing the tables, as a real ferry wires them. */
export function fakeMedia(ports = 20): { engine: FakeEngine; provider: FakeProvider; services: FakeServices; pool: CountingPortPool } {
  const engine = new FakeEngine();
  const pool = new CountingPortPool(20000, ports);
  return { engine, provider: new FakeProvider(engine), services: new FakeServices(engine, pool), pool };
}
