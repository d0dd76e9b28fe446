// Typed control channel to the Rust media engine. The engine owns sockets and
// does every per-packet operation; this class only configures it and routes
// its batched, signalling-rate events to whoever owns each endpoint.
import { EventEmitter } from 'node:events';

import {
  loadNative,
  type EngineEvent,
  type NativeEngine,
  type NativeEngineCounters,
  type NativeEndpointOptions,
  type RemoteAddress,
} from './native.js';

// The engine's events and counters are declared once, in Rust (native/src/events.rs, stats.rs).
export type { EngineEvent, RemoteAddress };

export type SrtpProfileName =
  | 'AES_CM_128_HMAC_SHA1_80'
  | 'AES_CM_128_HMAC_SHA1_32'
  | 'AEAD_AES_128_GCM'
  | 'AEAD_AES_256_GCM';

export type MediaKind = 'audio' | 'video';

/** Video codecs whose keyframes the engine recognises in RTP payloads. */
export type VideoCodecName = 'vp8' | 'vp9' | 'h264';

export interface SwitchOptions {
  /**
   * Keep feeding the output from its current source until the first packet of a keyframe
   * of the new one (which needs a `codec`), so the receiver can decode across the switch.
   */
  onKeyframe?: boolean;
}

export interface MediaEngineOptions {
  /** Media threads: a number, or 'auto' (one per CPU this process may run on). Default 1. */
  workers?: number | 'auto';
  /** Pin media thread i to the i-th allowed CPU. */
  pinThreads?: boolean;
  /** 'load' (default) or 'round-robin' (see media.placement). */
  placement?: 'load' | 'round-robin';
  /**
   * Single-port mode (media.single_port): shared sockets on `address`, one port per media thread,
   * or one base port (thread i takes base + i). WebRTC endpoints opened with `shared` live there.
   */
  sharedPorts?: { address: string; ports: number[] };
}

export type EndpointOptions = NativeEndpointOptions;

export interface OpenedEndpoint {
  id: number;
  address: string;
  port: number;
}

export interface SrtpParameters {
  profile: SrtpProfileName;
  localKey: Buffer;
  localSalt: Buffer;
  remoteKey: Buffer;
  remoteSalt: Buffer;
}

export interface SourceOptions {
  ssrc: number;
  /** Added to the wire SSRC on receipt (lessons §4). */
  ssrcOffset?: number;
  kind: MediaKind;
  clockRate: number;
  /** Video codec, so outputs can switch to this source at one of its keyframes. */
  codec?: VideoCodecName;
}

export interface OutputOptions {
  source?: number;
  ssrc: number;
  payloadType?: number;
  /** RFC 4588 stream retransmissions go on (both, or neither: retransmit as sent). */
  rtxSsrc?: number;
  rtxPayloadType?: number;
}

export type EndpointEvent = Extract<EngineEvent, { endpoint: number }>;

/**
 * One engine per gateway process. `openEndpoint` binds a UDP socket inside a
 * media thread; `closeEndpoint` closes it (before returning) together with its
 * sources and outputs. Events for an endpoint go to the listener registered
 * for it; all events are also emitted as 'event'.
 */
export class MediaEngine extends EventEmitter {
  private readonly native: NativeEngine;
  private readonly endpointListeners = new Map<number, (event: EndpointEvent) => void>();
  private closed = false;

  constructor(options: MediaEngineOptions = {}) {
    super();
    const addon = loadNative();
    const workers = options.workers === 'auto' ? 0 : (options.workers ?? 1);
    this.native = new addon.NativeEngine({
      workers,
      pinThreads: options.pinThreads ?? false,
      placement: options.placement ?? 'load',
      ...(options.sharedPorts ? { sharedAddress: options.sharedPorts.address, sharedPorts: options.sharedPorts.ports } : {}),
    });
    this.native.onEvents((batch) => this.dispatch(batch));
  }

  private dispatch(batch: EngineEvent[]): void {
    for (const event of batch) {
      if ('endpoint' in event) this.endpointListeners.get(event.endpoint)?.(event);
      this.emit('event', event);
    }
  }

  get workerCount(): number {
    return this.native.workerCount();
  }

  /** Media thread that owns an endpoint. */
  endpointWorker(id: number): number {
    return this.native.endpointWorker(id);
  }

  /** Number of open endpoints (sockets) as the engine itself counts them. */
  endpointCount(): number {
    return this.closed ? 0 : this.native.stats().endpoints.length;
  }

  openEndpoint(options: EndpointOptions, listener?: (event: EndpointEvent) => void): OpenedEndpoint {
    const opened = this.native.openEndpoint(options);
    if (listener) this.endpointListeners.set(opened.id, listener);
    return opened;
  }

  closeEndpoint(id: number): void {
    this.endpointListeners.delete(id);
    this.native.closeEndpoint(id);
  }

  setSrtp(endpoint: number, params: SrtpParameters): void {
    this.native.setSrtp(endpoint, params);
  }

  setRemote(endpoint: number, remote: RemoteAddress | null): void {
    this.native.setRemote(endpoint, remote?.address ?? null, remote?.port ?? null);
  }

  /** ICE restart (RFC 8445 §9): new local credentials and the peer's new ufrag; the selected pair stays. */
  restartIce(endpoint: number, credentials: { ufrag: string; pwd: string; remoteUfrag: string | null }): void {
    this.native.restartIce(endpoint, credentials.ufrag, credentials.pwd, credentials.remoteUfrag);
  }

  setIceRemoteUfrag(endpoint: number, ufrag: string | null): void {
    this.native.setIceRemoteUfrag(endpoint, ufrag);
  }

  sendRaw(endpoint: number, data: Buffer, to: RemoteAddress): void {
    this.native.sendRaw(endpoint, data, to.address, to.port);
  }

  addSource(endpoint: number, options: SourceOptions): number {
    return this.native.addSource(endpoint, options);
  }

  removeSource(id: number): void {
    this.native.removeSource(id);
  }

  addOutput(endpoint: number, options: OutputOptions): number {
    return this.native.addOutput(endpoint, options);
  }

  /** Feeds an output from another source; its receiver sees one continuous stream. */
  switchOutput(output: number, source: number | null, options?: SwitchOptions): void {
    if (options?.onKeyframe) this.native.switchOutput(output, source, { onKeyframe: true });
    else this.native.switchOutput(output, source);
  }

  /** Caps the bitrate of the publisher behind `source` with REMB, repeated every second (null: no cap). */
  setBitrateCap(source: number, bps: number | null): void {
    this.native.setBitrateCap(source, bps);
  }

  /** The publisher's RFC 4588 RTX stream of a source, unwrapped to it (null: none). */
  setSourceRtx(source: number, rtx: { ssrc: number; payloadType: number } | null): void {
    this.native.setSourceRtx(source, rtx?.ssrc ?? null, rtx?.payloadType ?? null);
  }

  /**
   * The highest VP8 temporal layer an output forwards (null: every layer): lower at once, higher
   * from the next layer-sync frame; 'output-temporal' reports when it took effect.
   */
  setOutputTemporal(output: number, layer: number | null): void {
    this.native.setOutputTemporal(output, layer);
  }

  /**
   * VP9 SVC: the highest spatial and temporal layers an output forwards (null: all). Lower at
   * once; higher from a keyframe (asked for) or a switching-up point; 'output-spatial' and
   * 'output-temporal' report when it took effect.
   */
  setOutputSvc(output: number, spatial: number | null, temporal: number | null): void {
    this.native.setOutputSvc(output, spatial, temporal);
  }

  /**
   * Send-side bandwidth estimation for what ferry sends `endpoint`: every RTP packet carries the
   * transport-wide sequence number under `extensionId` (what the receiver negotiated), and its
   * transport-cc feedback drives the estimate ('bandwidth-estimate' events) and the layers of
   * outputs given a layer set (setOutputLayers). Null: off.
   */
  setSendBwe(endpoint: number, options: { extensionId: number; initialBps?: number; minBps?: number; maxBps?: number } | null): void {
    this.native.setSendBwe(endpoint, options);
  }

  /**
   * Lets an output choose among simulcast layers (source ids, lowest first) within its
   * transport's estimate, never above `preferred` (and VP8 temporal layer `temporalMax`); without
   * an estimate it gets `preferred`. Switches happen at keyframes ('output-switched'). Null hands
   * the choice back to switchOutput.
   */
  setOutputLayers(output: number, layers: { sources: number[]; preferred: number; temporalMax: number | null } | null): void {
    this.native.setOutputLayers(output, layers && { sources: layers.sources, preferred: layers.preferred, ...(layers.temporalMax !== null ? { temporalMax: layers.temporalMax } : {}) });
  }

  /**
   * Keeps a video source's current group of pictures: an output that starts on it gets it at
   * once (a picture to start from when the sender ignores keyframe requests).
   */
  setKeyframeCache(source: number, on: boolean): void {
    this.native.setKeyframeCache(source, on);
  }

  /** A source's receive rate over the last half second (bits/s; 0 before it is measured), without a round trip to its media thread. */
  sourceBitrate(source: number): number {
    return this.closed ? 0 : this.native.sourceBitrate(source);
  }

  /** Retransmissions of an output go as RFC 4588 RTX on this stream; null: as the packets were sent. */
  setOutputRtx(output: number, rtx: { ssrc: number; payloadType: number } | null): void {
    this.native.setOutputRtx(output, rtx?.ssrc ?? null, rtx?.payloadType ?? null);
  }

  pauseOutput(output: number, paused: boolean): void {
    this.native.pauseOutput(output, paused);
  }

  removeOutput(id: number): void {
    this.native.removeOutput(id);
  }

  requestKeyframe(source: number): void {
    this.native.requestKeyframe(source);
  }

  /**
   * Averages a source's RFC 6464 audio levels (header extension `extensionId`) over every
   * `packets` packets that carry one, reported as 'audio-level' events; null stops it.
   */
  setAudioLevelMeter(source: number, meter: { extensionId: number; packets: number } | null): void {
    this.native.setAudioLevelMeter(source, meter?.extensionId ?? null, meter?.packets ?? null);
  }

  /** Reports the RFC 4733 events `source` carries with `payloadType` (`telephone-event` events); null stops. */
  setTelephoneEvents(source: number, payloadType: number | null): void {
    this.native.setTelephoneEvents(source, payloadType);
  }

  /** Per payload type received, what `output` writes (`to`), or that it drops such packets (`to` null). */
  setOutputPayloadMap(output: number, map: ReadonlyArray<{ from: number; to: number | null }>): void {
    this.native.setOutputPayloadMap(output, map.map((e) => (e.to === null ? { from: e.from } : { from: e.from, to: e.to })));
  }

  stats(): NativeEngineCounters {
    return this.native.stats();
  }

  /**
   * Records `source` to a new Janus `.mjr` file (created before this returns; its folder must
   * exist). The media thread hands each decrypted packet to the native recording writer.
   */
  startRecording(source: number, options: { path: string; kind: string; codec: string; fmtp?: string; extensions?: { id: number; uri: string }[] }): number {
    return this.native.startRecording(source, options);
  }

  /** Records data-channel messages (codec "text") to a new `.mjr` file; `recordData` hands each over. */
  startDataRecording(path: string, codec: string): number {
    return this.native.startDataRecording(path, codec);
  }

  /** One message for a data recording; false when the writer's queue dropped it. */
  recordData(id: number, message: Buffer): boolean {
    return this.native.recordData(id, message);
  }

  /** Stops a recording: queued packets are written and the file closed before this returns. */
  stopRecording(id: number): { packets: number; bytes: number; error?: string } {
    return this.native.stopRecording(id);
  }

  /** The recording writer's counters (files open, packets written and dropped, write errors). */
  recorderStats(): ReturnType<NativeEngine['recorderStats']> {
    return this.native.recorderStats();
  }

  /**
   * Packets received by every source as `[id, packets, id, packets, …]`: the one counter a
   * periodic reader needs, without `stats()`'s object for every endpoint, source and output.
   */
  sourcePackets(): Float64Array {
    return this.closed ? new Float64Array(0) : this.native.sourcePackets();
  }

  /** Stops the media threads; every socket is closed when this returns. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.endpointListeners.clear();
    this.native.close();
  }
}
