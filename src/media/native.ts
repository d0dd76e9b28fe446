// Loads the Rust addon built by `npm install` (scripts/build.mjs copies it to native/ferry.node).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeEndpointOptions {
  bindAddress: string;
  port: number;
  ice?: { ufrag: string; pwd: string; remoteUfrag?: string; consentTimeoutMs?: number };
  remoteAddress?: string;
  remotePort?: number;
  latch?: boolean;
  ridExtensionId?: number;
  /** Transport-wide sequence number extension id: the engine sends transport-cc feedback. */
  twccExtensionId?: number;
  /** Media thread that must own the endpoint; absent = placed by load. */
  worker?: number;
  /** Placement group (e.g. a room): its endpoints are kept on few media threads. */
  group?: string;
}

export interface NativeEngineEvent {
  type: string;
  endpoint?: number;
  source?: number;
  address?: string;
  port?: number;
  data?: Buffer;
  ssrc?: number;
  payloadType?: number;
  rid?: string;
  bitrate?: number;
  worker?: number;
  message?: string;
  fractionLost?: number;
  lost?: number;
  level?: number;
  output?: number;
  expected?: number;
}

export interface NativeEndpointCounters {
  id: number;
  port: number;
  /** Media thread that owns the endpoint. */
  worker: number;
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  txFailed: number;
  stunRequests: number;
  stunReplies: number;
  stunErrorReplies: number;
  stunDropped: number;
  dtlsIn: number;
  dtlsOut: number;
  rtpIn: number;
  rtcpIn: number;
  srtpAuthFailures: number;
  srtpReplays: number;
  srtpOtherFailures: number;
  srtcpFailures: number;
  rtpMalformed: number;
  rtcpMalformed: number;
  unknownSsrc: number;
  unvalidatedDrops: number;
  noRemoteDrops: number;
  noSrtpDrops: number;
  demuxUnknown: number;
  keyframeRequestsRelayed: number;
  transportFeedbackSent: number;
  /** Generic NACKs sent to publishers on this endpoint for packets that did not arrive. */
  nacksSent: number;
  /** RFC 4588 retransmissions received and unwrapped to their source. */
  rtxIn: number;
  /** REMB packets sent to this endpoint's publisher (its bitrate cap). */
  rembSent: number;
}

export interface NativeStreamCounters {
  id: number;
  /** Media thread the source or output lives on. */
  worker: number;
  packets: number;
  bytes: number;
  dropped: number;
  /** Outputs: packets of another thread's source a full queue between threads dropped. */
  queueDrops: number;
  /** Outputs: sequence numbers the receiver NACKed, packets sent again, and ones that could not be. */
  nacked: number;
  retransmitted: number;
  rtxMissed: number;
  /** Outputs: packets of VP8 temporal layers above the output's choice, not sent. */
  filtered: number;
}

export interface NativeWorkerCounters {
  worker: number;
  cpuNs: number;
  loops: number;
  recvBatches: number;
  panics: number;
  /** Packets received and sent per second over the last second. */
  loadPps: number;
  /** Share of the last second the thread worked, ‰. */
  busyPermille: number;
  endpoints: number;
  /** Packets from other threads waiting in this thread's queue. */
  queueDepth: number;
  /** Packets not handed to another thread because its queue was full. */
  queueOverflows: number;
  crossSent: number;
  crossReceived: number;
  /** Sources of other threads this thread receives. */
  remoteFeeds: number;
  /** (source, thread) pairs this thread hands packets to. */
  subscriptions: number;
  sharedBuffers: number;
  /** Shared buffers another thread still holds. */
  sharedBuffersInUse: number;
}

export interface NativeEngineCounters {
  endpoints: NativeEndpointCounters[];
  sources: NativeStreamCounters[];
  outputs: NativeStreamCounters[];
  workers: NativeWorkerCounters[];
}

export interface NativeEngine {
  onEvents(cb: (events: NativeEngineEvent[]) => void): void;
  workerCount(): number;
  endpointWorker(id: number): number;
  openEndpoint(options: NativeEndpointOptions): { id: number; address: string; port: number };
  closeEndpoint(id: number): void;
  setSrtp(
    id: number,
    options: { profile: string; localKey: Buffer; localSalt: Buffer; remoteKey: Buffer; remoteSalt: Buffer },
  ): void;
  setRemote(id: number, address?: string | null, port?: number | null): void;
  restartIce(endpoint: number, ufrag: string, pwd: string, remoteUfrag: string | null): void;
  setIceRemoteUfrag(id: number, ufrag?: string | null): void;
  sendRaw(id: number, data: Buffer, address: string, port: number): void;
  addSource(endpoint: number, options: { ssrc: number; ssrcOffset?: number; kind: string; clockRate: number; codec?: string }): number;
  removeSource(id: number): void;
  addOutput(endpoint: number, options: { source?: number; ssrc: number; payloadType?: number; rtxSsrc?: number; rtxPayloadType?: number }): number;
  switchOutput(id: number, source?: number | null, options?: { onKeyframe?: boolean }): void;
  pauseOutput(id: number, paused: boolean): void;
  setOutputRtx(id: number, ssrc: number | null, payloadType: number | null): void;
  setOutputTemporal(id: number, layer: number | null): void;
  setSourceRtx(source: number, ssrc: number | null, payloadType: number | null): void;
  setBitrateCap(source: number, bps: number | null): void;
  removeOutput(id: number): void;
  requestKeyframe(source: number): void;
  setAudioLevelMeter(source: number, extensionId: number | null, packets: number | null): void;
  stats(): NativeEngineCounters;
  /** `[id, packets, id, packets, …]` over every source. */
  sourcePackets(): Float64Array;
  close(): void;
}

export interface NativeBlastParams {
  address: string;
  port: number;
  profile?: string;
  key?: Buffer;
  salt?: Buffer;
  ssrc: number;
  payloadType?: number;
  payload: number;
  durationMs: number;
  packetsPerSecond?: number;
  maxPackets?: number;
  firstSeq?: number;
  twccExtensionId?: number;
}

export interface NativeAddon {
  NativeEngine: new (options?: { workers?: number; pinThreads?: boolean; placement?: string }) => NativeEngine;
  benchSrtp(profile: string, op: 'protect' | 'unprotect', payload: number, iterations: number): { packets: number; nanos: number };
  benchNackGenerator(packets: number): { packets: number; nanos: number };
  benchBweEstimator(feedbacks: number): { packets: number; nanos: number };
  blast(params: NativeBlastParams): Promise<{ sent: number; failed: number; nanos: number }>;
  BenchSink: new (count: number, drain?: boolean) => { ports(): number[]; stop(): number };
  engineVersion(): string;
}

function findAddon(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'native', 'ferry.node');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error('ferry: native/ferry.node not found — run `npm install` (it builds the Rust addon)');
}

let cached: NativeAddon | undefined;

export function loadNative(): NativeAddon {
  if (!cached) {
    const require = createRequire(import.meta.url);
    cached = require(findAddon()) as NativeAddon;
  }
  return cached;
}
