/**
 * The media of one bridged call: a plain RTP leg per SIP m-line (one leased
 * UDP port each, RTP and RTCP multiplexed) tied to the handle's
 * PeerConnection m-line inside the native engine. No packet passes through
 * JavaScript: the bridge only connects outputs to sources.
 *
 *   SIP peer ──RTP──▶ leg source ──switchOutput──▶ WebRTC output ──SRTP──▶ browser
 *   browser ──SRTP──▶ WebRTC source ──switchOutput──▶ leg output ──RTP──▶ SIP peer
 *
 * The SIP peer's SSRC is learned from its first packet (an unknown SSRC on
 * the leg) unless its SDP announced one; a later new SSRC (a re-INVITE, a
 * PBX switching streams) replaces it. `close()` releases every leg and is
 * idempotent; it runs on every ending path of the call.
 *
 * RFC 4733 events share the audio SSRC under their own payload type, which
 * each side negotiates on its own. Per audio line (`applyEvents`):
 *
 *   SIP side   WebRTC side   SIP → browser          browser → SIP
 *   events     events        renumbered, and dtmf   renumbered (pass through)
 *   events     none          dropped, and dtmf      —
 *   none       events        —                      dropped, and a SIP INFO
 *
 * Recording (Janus's `recording` request): each wanted side of each line, the browser's
 * ("user") or the SIP peer's ("peer") audio or video, is written natively to a Janus `.mjr`
 * file from the source on that side; a peer source learned later starts its file then.
 * `close()` closes the files before the legs, on every ending path of the call.
 *
 * ("dtmf": the engine reports each event, `onDtmf('sip', …)`; "SIP INFO":
 * `onDtmf('webrtc', …)`, the handle sends application/dtmf-relay.) With
 * `dtmf_method: "info"` the SIP side has no events, so the third row holds.
 */
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import type { MediaStreamInfo } from '../../core/Media.js';
import type { MediaServices, RtpLeg, SdesKeys, TelephoneEvent } from '../../media/Routing.js';
import type { BridgeKind, SipCodec } from './SdpBridge.js';
import { RecordingSet, recordable, type Recording } from '../../media/Recorder.js';

/** A side of a call that can be recorded: whose media (the browser's "user", the SIP "peer") of which kind. */
export type RecordedSide = 'user-audio' | 'user-video' | 'peer-audio' | 'peer-video';

/** What the bridge needs of the handle's PeerConnection. */
export interface WebRtcSide {
  streams(): MediaStreamInfo[];
  onStreamsChanged(listener: () => void): () => void;
}

export interface BridgeLine {
  readonly kind: BridgeKind;
  readonly leg: RtpLeg;
  /** The WebRTC m-line this SIP m-line is tied to (set when negotiated). */
  mid: string | null;
  /** The SIP side's codec (its payload type is what the leg sends with). */
  sipCodec: SipCodec | null;
  /** Output on the leg: what ferry sends the SIP peer. */
  legOutput: number | null;
  /** Source on the leg: what the SIP peer sends ferry (latest SSRC). */
  sipSource: number | null;
  sipSsrcs: number[];
  /** Routes as last applied, so unchanged routes are not re-switched. */
  appliedToSip: number | null | undefined;
  appliedToWebRtc: number | null | undefined;
  appliedWebRtcOutput: number | null;
  /** Ferry stops sending to the SIP peer (hold, or the peer said recvonly/inactive). */
  sendPaused: boolean;
  /** The SDES keys the leg runs (as text, to tell a rekey from the same keys again); null: plain RTP. */
  srtpKeys: string | null;
  /** RFC 4733 telephone-event as the SIP side negotiated it (audio), or null. */
  sipEvents: SipCodec | null;
  /** Event handling as last applied (payload maps and watched sources), so unchanged ones are not re-sent. */
  appliedEvents: string | null;
  /** The WebRTC source watched for the browser's events (to send as SIP INFO), if any. */
  watchedWebSource: number | null;
}

/** Which side sent a DTMF digit the engine saw. */
export type DtmfSide = 'sip' | 'webrtc';

/** RFC 4733 §3.2: events 0-15 as DTMF signals; 16 (flash) and above are not digits. */
const DTMF_SIGNALS = '0123456789*#ABCD';

export class MediaBridge {
  readonly lines: BridgeLine[] = [];
  private webrtc: WebRtcSide | null = null;
  private unsubscribe: (() => void) | null = null;
  private webrtcUp = false;
  private closed = false;
  private unsubscribeEvents: (() => void) | null = null;
  /** Sides being recorded, the file name base, and the files. */
  private recordSides = new Set<RecordedSide>();
  private recordBase = '';
  private recordings: RecordingSet | null = null;
  /** Told when a recording's file fails to write (disk full, permissions). */
  onRecordingFailed: ((what: string, message: string) => void) | null = null;
  /** A digit the engine saw end: from the SIP peer (for `dtmf`) or the browser (for SIP INFO). */
  onDtmf: ((side: DtmfSide, signal: string, durationMs: number) => void) | null = null;

  constructor(
    private readonly services: MediaServices,
    private readonly owner: string,
    private readonly logger: Logger,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  /** Opens the leg for one SIP m-line (its port goes into the SIP SDP). */
  openLine(kind: BridgeKind): BridgeLine {
    if (this.closed) throw new Error('media bridge is closed');
    const leg = this.services.openRtpLeg({ owner: `${this.owner}:${kind}${this.lines.length}`, pool: 'sip', remote: null, latch: true });
    const line: BridgeLine = {
      kind, leg, mid: null, sipCodec: null, legOutput: null, sipSource: null, sipSsrcs: [],
      appliedToSip: undefined, appliedToWebRtc: undefined, appliedWebRtcOutput: null, sendPaused: false, srtpKeys: null,
      sipEvents: null, appliedEvents: null, watchedWebSource: null,
    };
    if (kind === 'audio' && !this.unsubscribeEvents && this.services.router.onTelephoneEvent) {
      this.unsubscribeEvents = this.services.router.onTelephoneEvent((source, ev) => this.onTelephoneEvent(source, ev));
    }
    leg.onUnknownSsrc(({ ssrc }) => this.learnSipSsrc(line, ssrc));
    this.lines.push(line);
    return line;
  }

  /**
   * Ties a SIP m-line to a WebRTC m-line once both sides agreed on the codec.
   * `remote` is the SIP peer's c=/m= address (null: learn it from the first packet).
   */
  configure(line: BridgeLine, options: {
    mid: string;
    sipCodec: SipCodec;
    remote: { address: string; port: number } | null;
    ssrcs?: number[];
    srtp?: SdesKeys | null;
    /** RFC 4733 events on the SIP side (null: none). */
    events?: SipCodec | null;
  }): void {
    if (this.closed) return;
    // Keys before anything can flow: the leg then drops plain RTP (an SRTP auth failure, counted).
    this.setSrtp(line, options.srtp ?? null);
    line.mid = options.mid;
    line.sipEvents = options.events ?? null;
    line.sipCodec = options.sipCodec;
    if (options.remote) line.leg.setRemote(options.remote);
    if (line.legOutput === null) {
      line.legOutput = line.leg.addOutput({ ssrc: randomInt(1, 0xffffffff), payloadType: options.sipCodec.payloadType, source: null });
      line.appliedToSip = null;
    }
    for (const ssrc of options.ssrcs ?? []) this.learnSipSsrc(line, ssrc);
    for (const ssrc of line.sipSsrcs.splice(0)) this.learnSipSsrc(line, ssrc);
    this.rewire();
  }

  /** The SIP peer moved its media (re-INVITE): new destination for the leg. */
  setRemote(line: BridgeLine, remote: { address: string; port: number } | null): void {
    if (this.closed || !remote) return;
    line.leg.setRemote(remote);
  }

  /**
   * Keys the leg with SDES-SRTP (RFC 4568); new keys (a peer's re-offer) replace
   * the old ones. A keyed leg never goes back to plain RTP (the caller refuses that).
   */
  setSrtp(line: BridgeLine, keys: SdesKeys | null): void {
    if (this.closed || !keys) return;
    const text = [keys.profile, keys.localKey, keys.localSalt, keys.remoteKey, keys.remoteSalt].map((k) => (typeof k === 'string' ? k : k.toString('base64'))).join('|');
    if (text === line.srtpKeys) return;
    line.leg.setSrtp(keys);
    line.srtpKeys = text;
  }

  /** The SIP side's RFC 4733 format changed (a re-offer kept or dropped it). */
  setSipEvents(line: BridgeLine, events: SipCodec | null): void {
    line.sipEvents = events;
    this.rewire();
  }

  /** Attaches the handle's PeerConnection; routes follow its stream changes. */
  attachWebRtc(side: WebRtcSide | null): void {
    if (this.closed || !side || side === this.webrtc) return;
    this.unsubscribe?.();
    this.webrtc = side;
    this.unsubscribe = side.onStreamsChanged(() => this.rewire());
    this.rewire();
  }

  /** ICE + DTLS are up: ferry may now send to the browser. */
  setWebRtcUp(): void {
    this.webrtcUp = true;
    this.rewire();
  }

  /** Pauses/resumes what ferry sends to the SIP peer (hold). */
  setSendPaused(line: BridgeLine, paused: boolean): void {
    line.sendPaused = paused;
    if (this.closed || line.legOutput === null) return;
    this.services.router.pauseOutput(line.legOutput, paused);
  }

  requestKeyframe(side: 'webrtc' | 'sip'): void {
    if (this.closed) return;
    for (const line of this.lines) {
      if (line.kind !== 'video') continue;
      if (side === 'sip' && line.sipSource !== null) this.services.router.requestKeyframe(line.sipSource);
      if (side === 'webrtc') {
        const source = this.webrtcStream(line)?.sources[0]?.source;
        if (source !== undefined) this.services.router.requestKeyframe(source);
      }
    }
  }

  private learnSipSsrc(line: BridgeLine, ssrc: number): void {
    if (this.closed) return;
    if (!line.sipCodec) {
      // Media before negotiation finished (early media, a fast peer): kept until configure().
      if (!line.sipSsrcs.includes(ssrc) && line.sipSsrcs.length < 8) line.sipSsrcs.push(ssrc);
      return;
    }
    try {
      line.sipSource = line.leg.addSource({ ssrc, kind: line.kind, clockRate: line.sipCodec.clockRate });
    } catch (err) {
      this.logger.warn({ err, ssrc }, 'sip bridge: could not add the SIP peer source');
      return;
    }
    this.rewire();
  }

  private webrtcStream(line: BridgeLine): MediaStreamInfo | undefined {
    if (!this.webrtc || line.mid === null) return undefined;
    return this.webrtc.streams().find((s) => s.mid === line.mid);
  }

  /** Applies every route whose ends exist; idempotent. */
  rewire(): void {
    if (this.closed) return;
    for (const line of this.lines) {
      const stream = this.webrtcStream(line);
      if (!stream) continue;
      try {
        // browser → SIP peer: the newest source on the WebRTC m-line.
        const webSource = stream.sources[stream.sources.length - 1]?.source ?? null;
        if (line.legOutput !== null && line.appliedToSip !== webSource) {
          this.services.router.switchOutput(line.legOutput, webSource);
          line.appliedToSip = webSource;
          if (line.sendPaused) this.services.router.pauseOutput(line.legOutput, true);
        }
        // SIP peer → browser, once the PeerConnection can carry it.
        if (this.webrtcUp && stream.output !== null && (line.appliedToWebRtc !== line.sipSource || line.appliedWebRtcOutput !== stream.output)) {
          this.services.router.switchOutput(stream.output, line.sipSource);
          line.appliedToWebRtc = line.sipSource;
          line.appliedWebRtcOutput = stream.output;
        }
        if (line.kind === 'audio') this.applyEvents(line, stream, webSource);
      } catch (err) {
        // The PeerConnection closed under us: the call is ending through terminate().
        this.logger.debug({ err, mid: line.mid }, 'sip bridge: route not applied');
      }
    }
    this.updateRecording();
  }

  /**
   * Starts recording `sides` (files `<base>-<side>.mjr`), or stops them (`on` false); sides
   * not named keep their state. Returns the files now open.
   */
  setRecording(sides: RecordedSide[], on: boolean, base: string): Recording[] {
    if (this.closed) return [];
    if (on) this.recordBase = base;
    for (const side of sides) {
      if (on) this.recordSides.add(side);
      else this.recordSides.delete(side);
    }
    if (!on && this.recordings) {
      for (const rec of this.recordings.recordings) if (sides.includes(rec.spec.mid as RecordedSide)) this.services.recorder?.stop(rec);
    }
    this.updateRecording();
    return this.recordingFiles().filter((r) => r.active);
  }

  recordingFiles(): readonly Recording[] {
    return this.recordings?.recordings ?? [];
  }

  /** Opens a file for each wanted side whose source exists and is not recorded yet. */
  private updateRecording(): void {
    const recorder = this.services.recorder;
    if (this.closed || !recorder || this.recordSides.size === 0) return;
    this.recordings ??= new RecordingSet(recorder, (rec, message) => this.onRecordingFailed?.(rec.path, message));
    for (const line of this.lines) {
      const stream = this.webrtcStream(line);
      const candidates: Array<[RecordedSide, number | null | undefined, string | undefined, { id: number; uri: string }[]]> = [
        [`user-${line.kind}`, stream?.sources[stream.sources.length - 1]?.source, stream?.codec?.name, stream?.extensions ?? []],
        [`peer-${line.kind}`, line.sipSource, line.sipCodec?.name, []],
      ];
      for (const [side, source, codecName, extensions] of candidates) {
        const codec = codecName?.toLowerCase();
        if (!this.recordSides.has(side) || source === null || source === undefined || !recordable(codec)) continue;
        // One file per side while it is wanted (the `mid` of a SIP recording names its side).
        if (this.recordings.recordings.some((r) => r.active && r.spec.mid === side)) continue;
        try {
          this.recordings.start({ source, path: recorder.pathFor(null, `${this.recordBase}-${side}`), kind: line.kind, codec: codec!, mid: side, extensions });
        } catch (err) {
          this.logger.warn({ err, side }, 'sip bridge: could not start recording');
          this.onRecordingFailed?.(side, (err as Error).message);
        }
      }
    }
  }

  /**
   * RFC 4733 across the line (see the table at the top): each output renumbers the other
   * side's event payload type to its own, or drops it; the SIP source is watched for the
   * peer's digits, and the browser's source when its digits must become SIP INFO.
   */
  private applyEvents(line: BridgeLine, stream: MediaStreamInfo, webSource: number | null): void {
    const router = this.services.router;
    if (!router.setOutputPayloadMap || !router.setTelephoneEvents) return;
    const sipPt = line.sipEvents?.payloadType ?? null;
    const webPt = stream.telephoneEvent ?? null;
    const translate = webPt !== null && sipPt === null;
    const watchWeb = translate ? webSource : null;
    const key = [sipPt, webPt, line.legOutput, stream.output, line.sipSource, watchWeb].join('|');
    if (key === line.appliedEvents) return;
    line.appliedEvents = key;
    if (line.legOutput !== null) router.setOutputPayloadMap(line.legOutput, webPt !== null ? [{ from: webPt, to: sipPt }] : []);
    if (stream.output !== null) router.setOutputPayloadMap(stream.output, sipPt !== null ? [{ from: sipPt, to: webPt }] : []);
    if (line.sipSource !== null) router.setTelephoneEvents(line.sipSource, sipPt);
    if (line.watchedWebSource !== null && line.watchedWebSource !== watchWeb) router.setTelephoneEvents(line.watchedWebSource, null);
    if (watchWeb !== null) router.setTelephoneEvents(watchWeb, webPt);
    line.watchedWebSource = watchWeb;
  }

  private onTelephoneEvent(source: number, ev: TelephoneEvent): void {
    if (this.closed || ev.event >= DTMF_SIGNALS.length) return;
    for (const line of this.lines) {
      const side: DtmfSide | null = source === line.sipSource && line.sipEvents ? 'sip' : source === line.watchedWebSource ? 'webrtc' : null;
      if (!side) continue;
      const clockRate = side === 'sip' ? line.sipEvents!.clockRate : line.sipCodec?.clockRate ?? 8000;
      const durationMs = Math.max(1, Math.round((ev.duration * 1000) / (clockRate || 8000)));
      this.onDtmf?.(side, DTMF_SIGNALS[ev.event]!, durationMs);
      return;
    }
  }

  /** Ports this bridge holds, for Admin `handle_info`. */
  describe(): Array<{ kind: string; local_port: number; mid: string | null; codec: string | null; ssrcs: number; srtp: boolean }> {
    return this.lines.map((l) => ({ kind: l.kind, local_port: l.leg.port, mid: l.mid, codec: l.sipCodec?.name ?? null, ssrcs: l.sipSource === null ? 0 : 1, srtp: l.srtpKeys !== null }));
  }

  /** Releases every leg (and with it its sources and outputs). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.unsubscribeEvents?.();
    this.unsubscribeEvents = null;
    this.onDtmf = null;
    this.webrtc = null;
    // The files close whole before the legs (and their sources) go.
    this.recordings?.stopAll();
    this.recordSides.clear();
    for (const line of this.lines) {
      try {
        line.leg.close();
      } catch (err) {
        this.logger.error({ err }, 'sip bridge: leg close failed');
      }
    }
  }
}
