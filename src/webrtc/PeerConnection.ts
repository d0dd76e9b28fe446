// One handle's WebRTC PeerConnection: ICE-lite and SRTP run in the native
// engine on one leased port; the DTLS handshake runs in its DtlsSession
// (werift's DTLS stack over the engine endpoint) and its keys go to the
// engine. No media packet passes through this object.
//
// About 700 lines, kept whole: the state table, applying descriptions
// and the endpoint's events all read and change the same per-m-line state.
// The SDP it sends is built in SdpBuilder.ts, the DTLS side is DtlsSession.ts,
// the data channels (SCTP in DTLS application data) are DataChannels.ts.
import { randomBytes } from 'node:crypto';

import { JanusError, JanusErrorCode } from '../core/JanusError.js';
import type { JsonObject } from '../core/Json.js';
import type {
  AnswerOptions,
  DataOfferSection,
  HandleMedia,
  Jsep,
  MediaEvents,
  MediaStreamInfo,
  OfferSection,
  OutgoingDataMessage,
  RoutableMedia,
  TrickleCandidate,
} from '../core/Media.js';
import type { EndpointEvent, MediaEngine, RemoteAddress, SrtpParameters, SrtpProfileName, VideoCodecName } from '../media/MediaEngine.js';
import type { EndpointLeasePool, PortLease } from '../media/PortPool.js';
import type { DtlsCertificate } from './DtlsCertificate.js';
import { DataChannels, type DataChannelStats } from './DataChannels.js';
import { DtlsSession } from './DtlsSession.js';
import { parseRemoteDescription, SdpError, type LocalTransport, type RemoteDescription } from './Sdp.js';
import { TransportReporter } from './TransportReporter.js';
import { buildAnswer, buildOffer, MAX_SIMULCAST_LAYERS, RID_EXTENSION_URI, TWCC_EXTENSION_URI, TWCC_OFFER_EXTENSION_ID, type DataSectionState, type StreamState } from './SdpBuilder.js';

export type PeerConnectionState =
  | 'new'
  | 'have-remote-offer'
  | 'have-local-offer'
  | 'negotiated'
  | 'connecting'
  | 'connected'
  | 'closed';

type PeerConnectionInput = 'remote-offer' | 'local-answer' | 'local-offer' | 'remote-answer' | 'ice-selected' | 'dtls-connected' | 'close';

/**
 * The explicit state table. Renegotiation while connected keeps the state;
 * anything not listed is refused (an offer/answer out of order is a 471/469).
 */
const TRANSITIONS: Readonly<Record<PeerConnectionState, Partial<Record<PeerConnectionInput, PeerConnectionState>>>> = {
  new: { 'remote-offer': 'have-remote-offer', 'local-offer': 'have-local-offer', close: 'closed' },
  'have-remote-offer': { 'local-answer': 'negotiated', 'remote-offer': 'have-remote-offer', close: 'closed' },
  'have-local-offer': { 'remote-answer': 'negotiated', 'local-offer': 'have-local-offer', close: 'closed' },
  // DTLS may complete before the nomination is reported: Chrome starts DTLS on its first
  // successful check (RFC 8445 §8.1.1 lets it nominate later), so 'dtls-connected' is accepted here too.
  negotiated: { 'ice-selected': 'connecting', 'dtls-connected': 'connected', 'remote-offer': 'have-remote-offer', 'local-offer': 'have-local-offer', close: 'closed' },
  connecting: { 'ice-selected': 'connecting', 'dtls-connected': 'connected', close: 'closed' },
  connected: {
    'ice-selected': 'connected',
    'remote-offer': 'connected',
    'local-answer': 'connected',
    'local-offer': 'connected',
    'remote-answer': 'connected',
    close: 'closed',
  },
  closed: { close: 'closed' },
};

/**
 * `slowlink` (Janus): sent when at least this fraction (RFC 3550 §6.4.1, in 1/256) of an
 * m-line's packets is lost, at most once per SLOWLINK_INTERVAL_MS per direction: downlink
 * (uplink=false) from the peer's receiver reports on what ferry sends, uplink (uplink=true)
 * from the engine's count of what the peer sent that never arrived.
 */
const SLOWLINK_FRACTION = 13; // ~5 %
const SLOWLINK_INTERVAL_MS = 5000;

export interface PeerConnectionOptions {
  engine: MediaEngine;
  ports: EndpointLeasePool;
  certificate: DtlsCertificate;
  owner: string;
  /** Media-thread placement group of the endpoint (e.g. a room). */
  placementGroup?: string;
  /** Addresses announced as host candidates (e.g. 127.0.0.1, or the host's public address). */
  candidateAddresses: string[];
  events: MediaEvents;
  /** ICE + DTLS must complete within this after negotiation. */
  connectTimeoutMs: number;
  consentTimeoutMs?: number;
  /** DTLS-SRTP profiles ferry accepts, most preferred first (default: GCM, then AES-CM-80). */
  srtpProfiles?: SrtpProfileName[];
  /** Most m-lines a remote offer may have (`media.max_mlines`). */
  maxMLines?: number;
  /** ICE-TCP (`media.ice_tcp`): a passive TCP candidate on the PeerConnection's port too. */
  iceTcp?: boolean;
  /**
   * Send-side bandwidth estimation of what ferry sends this peer (`media.bandwidth_estimation`):
   * where the estimate starts and the most it may reach (bits/s). Absent: off.
   */
  bandwidthEstimation?: { startBitrate: number; maxBitrate: number };
  /**
   * Data channels (RFC 8831): the a=max-message-size ferry announces, the bytes it queues per
   * association, and the shared counters. Absent: m=application is answered rejected.
   */
  dataChannels?: { maxMessageSize: number; maxSendBuffer: number; stats: DataChannelStats };
  onClosed: (pc: PeerConnection) => void;
  log?: { warn(obj: object, msg: string): void; debug(obj: object, msg: string): void };
}

export class PeerConnection implements HandleMedia, RoutableMedia {
  private state: PeerConnectionState = 'new';
  private lease: PortLease | null = null;
  private iceUfrag = randomBytes(6).toString('hex');
  private icePwd = randomBytes(16).toString('hex');
  /** Names ferry's streams (cname, msid) for the PeerConnection's life, across ICE restarts. */
  private readonly streamName = `ferry-${this.iceUfrag}`;
  private iceRestarts = 0;
  private remote: RemoteDescription | null = null;
  private localSdp: string | null = null;
  private streamStates: StreamState[] = [];
  /** Every m-line of ferry's last offer, by mid in order (an answer must have exactly these). */
  private offeredMids: string[] = [];
  /** The negotiated m=application section, and its association once DTLS is up. */
  private dataSection: DataSectionState | null = null;
  private dataChannels: DataChannels | null = null;
  private readonly dtls: DtlsSession;
  private audioLevelMetering: { packets: number; listener: (mid: string, level: number) => void } | null = null;
  private remoteAddress: RemoteAddress | null = null;
  private srtpProfile: SrtpProfileName | null = null;
  private connectTimer: NodeJS.Timeout | null = null;
  private readonly streamListeners = new Set<() => void>();
  private remoteCandidates = 0;
  private readonly lastSlowLink = new Map<string, number>();
  /** RtpStreamId extension id the native endpoint reads rids with (set when the lease opens). */
  private ridExtension: number | undefined;
  private twccExtension: number | undefined;
  /** Extension id the engine writes transport-wide sequence numbers under (null: no estimation). */
  private sendBweExtension: number | null = null;
  /** The last 'bandwidth-estimate' of what ferry sends this peer. */
  private estimate: { bitrate: number; lossPermille: number; rttMs: number; limited: boolean } | null = null;
  private closeReason: string | null = null;
  /** Packets the peer sent that never arrived, per source (summed 'source-loss' reports), for media stats. */
  private readonly lostBySource = new Map<number, number>();
  /** Cumulative loss the peer's receiver last reported, per SSRC ferry sends, for media stats. */
  private readonly remoteLostBySsrc = new Map<number, number>();
  /** Transport steps for the event handlers. */
  private readonly reporter: TransportReporter;
  readonly createdAt = Date.now();

  constructor(private readonly options: PeerConnectionOptions) {
    this.reporter = new TransportReporter(options.events.transportEvent?.bind(options.events), options.candidateAddresses);
    this.dtls = new DtlsSession({
      certificate: options.certificate,
      srtpProfiles: options.srtpProfiles,
      send: (data) => this.sendDtls(data),
      remoteFingerprint: () => this.remote?.fingerprint ?? null,
      onConnected: (keys) => this.onDtlsConnected(keys),
      onFailed: (reason) => {
        if (this.state !== 'closed') this.reporter.dtlsFailed();
        this.fail(reason);
      },
      onApplicationData: (data) => this.dataChannels?.receive(data),
      log: options.log,
    });
  }

  get currentState(): PeerConnectionState {
    return this.state;
  }

  get endpoint(): number | null {
    return this.lease?.endpoint ?? null;
  }

  get port(): number | null {
    return this.lease?.port ?? null;
  }

  private apply(input: PeerConnectionInput): boolean {
    const next = TRANSITIONS[this.state][input];
    if (next === undefined) return false;
    this.state = next;
    return true;
  }

  /** ICE-TCP needs a port of the PeerConnection's own (not single-port mode's shared one). */
  private get iceTcp(): boolean {
    return this.options.iceTcp === true && !this.options.ports.shared;
  }

  private ensureLease(): PortLease {
    if (this.lease) return this.lease;
    // The engine reads the rid of unsignalled SSRCs with the offer's RtpStreamId extension id
    // (fixed for the endpoint's life: RFC 8285 §6 keeps ids stable across renegotiation in practice).
    const offered = this.remote?.media.flatMap((m) => m.extensions) ?? [];
    const ridExtensionId = offered.find((e) => e.uri === RID_EXTENSION_URI)?.id;
    this.ridExtension = ridExtensionId;
    // Only when ferry answers: the offerer then sends the transport-wide sequence numbers.
    const twccExtensionId = this.remote?.type === 'offer' ? offered.find((e) => e.uri === TWCC_EXTENSION_URI)?.id : undefined;
    this.twccExtension = twccExtensionId;
    this.lease = this.options.ports.lease(
      this.options.owner,
      {
        ice: { ufrag: this.iceUfrag, pwd: this.icePwd, consentTimeoutMs: this.options.consentTimeoutMs },
        ...(ridExtensionId !== undefined ? { ridExtensionId } : {}),
        ...(twccExtensionId !== undefined ? { twccExtensionId } : {}),
        ...(this.options.placementGroup !== undefined ? { group: this.options.placementGroup } : {}),
        ...(this.iceTcp ? { iceTcp: true } : {}),
      },
      (event) => this.onEndpointEvent(event),
    );
    return this.lease;
  }

  // ---- HandleMedia -------------------------------------------------------------------------

  setRemoteDescription(jsep: Jsep): void {
    if (this.state === 'closed') throw new JanusError(JanusErrorCode.WEBRTC_STATE, 'PeerConnection is closed');
    if (jsep.type !== 'offer' && jsep.type !== 'answer') {
      throw new JanusError(JanusErrorCode.JSEP_UNKNOWN_TYPE, `Unsupported JSEP type '${String(jsep.type)}'`);
    }
    let desc: RemoteDescription;
    try {
      desc = parseRemoteDescription(jsep.type, jsep.sdp, { maxMLines: this.options.maxMLines });
    } catch (err) {
      if (err instanceof SdpError) throw new JanusError(JanusErrorCode.JSEP_INVALID_SDP, `Invalid SDP: ${err.message}`);
      throw err;
    }
    if (jsep.type === 'answer' && this.state !== 'have-local-offer' && this.state !== 'connected') {
      throw new JanusError(JanusErrorCode.UNEXPECTED_ANSWER, 'Unexpected ANSWER (no OFFER)');
    }
    if (jsep.type === 'answer') this.checkAnswerMatchesOffer(desc);
    // RFC 8839 §4.4.1.1.1: an offer with new ICE credentials restarts ICE, and the answer
    // must carry new credentials too. DTLS and SRTP go on (RFC 8842 §4.2): same transport.
    const iceRestart = jsep.type === 'offer' && this.lease !== null && this.remote !== null && this.remote.iceUfrag !== desc.iceUfrag;
    if (!this.apply(jsep.type === 'offer' ? 'remote-offer' : 'remote-answer')) {
      throw new JanusError(JanusErrorCode.WEBRTC_STATE, `Cannot apply ${jsep.type} in state ${this.state}`);
    }
    // Everything above refuses without changing anything; from here the description is being
    // applied, and a failure must not leave a half-applied PeerConnection behind.
    this.whileApplying(`remote ${jsep.type}`, () => {
      this.remote = desc;
      const lease = this.ensureLease();
      if (iceRestart) {
        this.iceUfrag = randomBytes(6).toString('hex');
        this.icePwd = randomBytes(16).toString('hex');
        this.iceRestarts++;
        this.reporter.iceRestarted();
        this.options.engine.restartIce(lease.endpoint, { ufrag: this.iceUfrag, pwd: this.icePwd, remoteUfrag: desc.iceUfrag });
      } else {
        this.options.engine.setIceRemoteUfrag(lease.endpoint, desc.iceUfrag);
      }
      if (jsep.type === 'answer') {
        this.applyDataAnswer(desc);
        this.dropRefusedOutputs(desc);
        this.applyRtx(desc);
        this.applyTelephoneEvent(desc);
        // The answerer kept ferry's transport-wide sequence numbers: it will report on them.
        const twcc = desc.media.flatMap((m) => m.extensions).find((e) => e.uri === TWCC_EXTENSION_URI && e.id === TWCC_OFFER_EXTENSION_ID);
        this.applySendBwe(twcc?.id);
        this.completeNegotiation();
      }
    });
  }

  /** Runs a step that changes the PeerConnection; if it throws, the PeerConnection fails (hangup) and the error goes on. */
  private whileApplying(what: string, step: () => void): void {
    try {
      step();
    } catch (err) {
      this.fail(`Could not apply the ${what}: ${err instanceof Error ? err.message : String(err)}`);
      throw err;
    }
  }

  /** RFC 3264 §6: an answer has exactly the offer's m-lines, in its order (mids included). */
  private checkAnswerMatchesOffer(answer: RemoteDescription): void {
    const offered = this.offeredMids;
    if (answer.media.length !== offered.length) {
      throw new JanusError(JanusErrorCode.JSEP_INVALID_SDP, `Invalid SDP: the answer has ${answer.media.length} m-lines, the offer had ${offered.length} (RFC 3264 §6)`);
    }
    answer.media.forEach((m, i) => {
      if (m.mid !== offered[i]) {
        throw new JanusError(JanusErrorCode.JSEP_INVALID_SDP, `Invalid SDP: a=mid:${m.mid} where the offer's m-line ${i + 1} is mid ${offered[i]} (RFC 3264 §6)`);
      }
    });
  }

  createAnswer(
    offer: Jsep,
    options: AnswerOptions,
  ): Jsep {
    if (!this.remote || this.remote.type !== 'offer') {
      throw new JanusError(JanusErrorCode.WEBRTC_STATE, 'No remote offer to answer');
    }
    if (offer.sdp !== undefined && this.remote && offer.type !== 'offer') {
      throw new JanusError(JanusErrorCode.JSEP_UNKNOWN_TYPE, 'createAnswer needs an offer');
    }
    const lease = this.ensureLease();
    const { sdp, setup, states, data } = buildAnswer(this.remote, options, {
      previous: new Map(this.streamStates.map((s) => [s.info.mid, s])),
      streamName: this.streamName,
      transport: this.localTransport(lease),
      ridExtension: this.ridExtension,
      twccExtension: this.twccExtension,
      ...(this.options.dataChannels ? { dataChannels: { maxMessageSize: this.options.dataChannels.maxMessageSize } } : {}),
    });
    this.dtls.chooseRoleForSetup(setup);
    this.whileApplying('local answer', () => {
      this.apply('local-answer');
      this.localSdp = sdp;
      this.reporter.localDescription(this.iceUfrag, lease.port);
      this.streamStates = states;
      this.setDataSection(data);
      // The offerer negotiated transport-wide sequence numbers (both directions, RFC 8285 §6):
      // where ferry sends too, its feedback on ferry's packets gives their estimate.
      const sends = states.some((st) => st.info.outputSsrc !== null);
      this.applySendBwe(sends && sdp.includes(TWCC_EXTENSION_URI) ? this.twccExtension : undefined);
      this.completeNegotiation();
    });
    return { type: 'answer', sdp };
  }

  createOffer(sections: (OfferSection | DataOfferSection)[]): Jsep {
    if (this.state === 'closed') throw new JanusError(JanusErrorCode.WEBRTC_STATE, 'PeerConnection is closed');
    // Without data channels configured, an m=application is left out rather than offered.
    const offered = this.options.dataChannels ? sections : sections.filter((s) => s.kind !== 'data');
    if (offered.length === 0 && sections.length > 0) throw new JanusError(JanusErrorCode.UNKNOWN, 'Data channels are disabled (media.data_channels)');
    if (!this.apply('local-offer')) throw new JanusError(JanusErrorCode.WEBRTC_STATE, `Cannot offer in state ${this.state}`);
    const lease = this.ensureLease();
    const previous = new Map(this.streamStates.map((s) => [s.info.mid, s]));
    const { sdp, states, data } = buildOffer(offered, {
      previous,
      previousData: this.dataSection,
      streamName: this.streamName,
      transport: this.localTransport(lease),
      transportCc: this.options.bandwidthEstimation !== undefined,
      ...(this.options.dataChannels ? { dataChannels: { maxMessageSize: this.options.dataChannels.maxMessageSize } } : {}),
    });
    // Removed sections keep nothing: their outputs go.
    for (const [mid, st] of previous) {
      if (!states.some((s) => s.info.mid === mid) && st.info.output !== null) {
        try {
          this.options.engine.removeOutput(st.info.output);
        } catch {
          /* endpoint already gone */
        }
      }
    }
    this.localSdp = sdp;
    this.streamStates = states;
    this.reporter.localDescription(this.iceUfrag, lease.port);
    this.offeredMids = [...states.map((st) => ({ mid: st.info.mid, index: st.info.index })), ...(data ? [{ mid: data.mid, index: data.index }] : [])]
      .sort((a, b) => a.index - b.index)
      .map((m) => m.mid);
    this.setDataSection(data);
    this.ensureOutputs();
    this.notifyStreams();
    return { type: 'offer', sdp };
  }

  prepareLocalDescription(jsep: Jsep): Jsep {
    if (jsep.sdp !== this.localSdp) {
      // Plugins build local descriptions through createAnswer/createOffer so the transport
      // attributes are ferry's own; anything else cannot be trusted to carry them.
      throw new JanusError(JanusErrorCode.JSEP_INVALID_SDP, 'Local description was not created by this PeerConnection');
    }
    return jsep;
  }

  addRemoteCandidates(candidates: TrickleCandidate[]): void {
    // ICE-lite: peers' addresses are learned from their connectivity checks (RFC 8445 §2.5);
    // trickled candidates are only counted (and reported to the event handlers).
    this.remoteCandidates += candidates.length;
    this.reporter.remoteCandidates(candidates);
  }

  /** Loss for media stats: per source received, and per SSRC sent as the peer last reported it. */
  lossCounters(): { bySource: ReadonlyMap<number, number>; remoteBySsrc: ReadonlyMap<number, number> } {
    return { bySource: this.lostBySource, remoteBySsrc: this.remoteLostBySsrc };
  }

  streams(): MediaStreamInfo[] {
    return this.streamStates.map((s) => ({ ...s.info, sources: [...s.info.sources] }));
  }

  /**
   * Each m-line's state as it is, not copied as `streams()` copies it: for readers that run
   * every second for every PeerConnection (the media-flow monitor) and must not leave garbage.
   */
  forEachStream(visit: (info: Readonly<MediaStreamInfo>) => void): void {
    const states = this.streamStates;
    for (let i = 0; i < states.length; i++) visit(states[i]!.info);
  }

  onStreamsChanged(listener: () => void): () => void {
    this.streamListeners.add(listener);
    return () => this.streamListeners.delete(listener);
  }

  /**
   * Averages the peer's RFC 6464 audio levels over every `packets` packets of each audio
   * m-line whose answer accepted the extension; `listener` gets each average (−dBov,
   * 0 loudest). null stops metering. Sources learned later are metered too.
   */
  meterAudioLevels(options: { packets: number } | null, listener?: (mid: string, level: number) => void): void {
    this.audioLevelMetering = options && listener ? { packets: Math.max(1, Math.floor(options.packets)), listener } : null;
    for (const st of this.streamStates) for (const s of st.info.sources) this.applyAudioLevelMeter(st, s.source);
  }

  private applyAudioLevelMeter(st: StreamState, source: number): void {
    if (st.audioLevelExtension === undefined || this.state === 'closed') return;
    const metering = this.audioLevelMetering;
    try {
      this.options.engine.setAudioLevelMeter(source, metering ? { extensionId: st.audioLevelExtension, packets: metering.packets } : null);
    } catch (err) {
      this.options.log?.warn({ err, source }, 'could not meter audio level');
    }
  }

  describe(): JsonObject {
    return {
      state: this.state,
      port: this.lease?.port ?? null,
      'media-thread': this.lease ? this.mediaThread(this.lease.endpoint) : null,
      'placement-group': this.options.placementGroup ?? null,
      ice: { ufrag: this.iceUfrag, 'remote-ufrag': this.remote?.iceUfrag ?? null, restarts: this.iceRestarts, selected: this.remoteAddress ? `${this.remoteAddress.address}:${this.remoteAddress.port}` : null, 'remote-candidates': this.remoteCandidates },
      dtls: { role: this.dtls.role, 'srtp-profile': this.srtpProfile, connected: this.state === 'connected' },
      'data-channels': this.dataSection
        ? { mid: this.dataSection.mid, 'sctp-port': this.dataSection.localPort, 'remote-sctp-port': this.dataSection.remote?.port ?? null, ...(this.dataChannels?.describe() ?? {}) }
        : null,
      // Send-side bandwidth estimation of what ferry sends this peer, as last reported.
      bwe:
        this.sendBweExtension === null
          ? null
          : {
              'extension-id': this.sendBweExtension,
              'estimate-bps': this.estimate?.bitrate ?? null,
              'loss-permille': this.estimate?.lossPermille ?? null,
              'rtt-ms': this.estimate?.rttMs ?? null,
              limited: this.estimate?.limited ?? false,
            },
      streams: this.streamStates.map((s) => ({
        mid: s.info.mid,
        type: s.info.kind,
        codec: s.info.codec?.name ?? null,
        ssrcs: s.info.sources.map((x) => x.ssrc),
        'output-ssrc': s.info.outputSsrc,
      })),
    };
  }

  /** What every local description says of ferry's side of the transport. */
  private localTransport(lease: PortLease): Omit<LocalTransport, 'setup'> {
    return {
      iceUfrag: this.iceUfrag,
      icePwd: this.icePwd,
      fingerprint: this.options.certificate.fingerprint,
      candidates: [
        ...this.options.candidateAddresses.map((ip) => ({ ip, port: lease.port })),
        ...(this.iceTcp ? this.options.candidateAddresses.map((ip) => ({ ip, port: lease.port, tcp: true })) : []),
      ],
    };
  }

  private mediaThread(endpoint: number): number | null {
    try {
      return this.options.engine.endpointWorker(endpoint);
    } catch {
      return null; // closed meanwhile
    }
  }

  /** Ends the PeerConnection: data channels, DTLS, endpoint and port lease released. Idempotent. */
  close(reason: string): void {
    if (this.state === 'closed') return;
    // First, while the endpoint can still send the association's ABORT.
    this.dataChannels?.close(reason);
    this.dataChannels = null;
    this.apply('close');
    this.closeReason = reason;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.dtls.close();
    // Releasing the lease closes the native endpoint and with it every source and output.
    this.lease?.release();
    for (const s of this.streamStates) {
      s.info.sources = [];
      s.info.output = null;
    }
    this.notifyStreams();
    this.options.onClosed(this);
  }

  get closedReason(): string | null {
    return this.closeReason;
  }

  /** Closes because something failed on its own, and tells the handle. */
  private fail(reason: string): void {
    if (this.state === 'closed') return;
    this.close(reason);
    this.options.events.closed(reason);
  }

  // ---- negotiation → engine routes and DTLS ---------------------------------------------------

  private completeNegotiation(): void {
    // When ferry offers, its ICE-lite agent answers checks as soon as the offer is out, so the
    // browser may nominate a pair (and start DTLS) before its answer reaches ferry.
    this.reporter.negotiated();
    if (this.state === 'negotiated' && this.remoteAddress !== null) this.apply('ice-selected');
    this.syncSources();
    this.ensureOutputs();
    this.startDtls();
    if (!this.connectTimer && this.state !== 'connected') {
      this.connectTimer = setTimeout(() => {
        if (this.state === 'connected') return;
        if (this.remoteAddress === null) this.reporter.iceFailed();
        else this.reporter.dtlsFailed();
        this.fail('ICE/DTLS timeout');
      }, this.options.connectTimeoutMs);
      this.connectTimer.unref?.();
    }
    this.notifyStreams();
  }

  /** Sources for every SSRC the remote description signals on an m-line ferry receives on. */
  private syncSources(): void {
    const lease = this.lease;
    if (!lease || !this.remote) return;
    for (const st of this.streamStates) {
      const remote = st.remote ?? this.remote.media.find((m) => m.mid === st.info.mid) ?? null;
      st.remote = remote;
      // With rid simulcast the layers are learned from packets carrying the rids; an
      // a=ssrc the offerer also listed (werift lists its sender's) is not a layer.
      if (!remote || st.recvPayloadType === null || !st.info.codec || st.simulcastRids) continue;
      for (const ssrc of remote.ssrcs) this.addSource(st, ssrc);
    }
  }

  private addSource(st: StreamState, ssrc: number, rid?: string): void {
    const lease = this.lease;
    if (!lease || !st.info.codec || st.info.sources.some((s) => s.ssrc === ssrc)) return;
    try {
      // The video codec lets subscribers switch to this source exactly at its keyframes.
      const codecName = st.info.codec.name.toLowerCase();
      const codec: VideoCodecName | undefined = st.info.kind === 'video' && (codecName === 'vp8' || codecName === 'vp9' || codecName === 'h264') ? codecName : undefined;
      const source = this.options.engine.addSource(lease.endpoint, {
        ssrc,
        kind: st.info.kind,
        clockRate: st.info.codec.clockRate,
        ...(codec ? { codec } : {}),
      });
      st.info.sources.push(rid !== undefined ? { ssrc, source, rid } : { ssrc, source });
      // Its retransmissions on the RTX stream the offer paired with it are unwrapped to it.
      const rtxSsrc = st.remote?.rtxSsrcs.get(ssrc);
      if (rtxSsrc !== undefined && st.rtxReceive !== undefined) {
        this.options.engine.setSourceRtx(source, { ssrc: rtxSsrc, payloadType: st.rtxReceive });
      }
      // Only when a consumer asked: a source starts unmetered in the engine.
      if (this.audioLevelMetering) this.applyAudioLevelMeter(st, source);
      // Layers by rid are listed in the offer's rid order (RFC 8853 §5.1), whatever order
      // their first packets came in; consumers rely on that order to know which is which.
      const order = st.remote?.rids.map((r) => r.id) ?? [];
      if (rid !== undefined && order.length) {
        const rank = (r: string | undefined) => (r === undefined ? order.length : order.indexOf(r) < 0 ? order.length : order.indexOf(r));
        st.info.sources.sort((a, b) => rank(a.rid) - rank(b.rid));
      }
    } catch (err) {
      this.options.log?.warn({ err, ssrc }, 'could not add source');
    }
  }

  /**
   * RFC 3264 §6: an offered m-line the answer rejects (port 0) carries no media, and
   * one the answerer marks sendonly/inactive must not be sent to (§6.1). Its output
   * goes, so the engine sends nothing there; a later offer brings it back.
   */
  private dropRefusedOutputs(answer: RemoteDescription): void {
    for (const st of this.streamStates) {
      const m = answer.media.find((x) => x.mid === st.info.mid);
      const receives = m !== undefined && !m.rejected && (m.direction === 'recvonly' || m.direction === 'sendrecv');
      st.refused = !receives;
      if (receives || st.info.output === null) continue;
      try {
        this.options.engine.removeOutput(st.info.output);
      } catch {
        /* endpoint already gone */
      }
      st.info.output = null;
    }
  }

  /** Turns the engine's send-side estimation on with `extensionId` (or off), when configured. */
  private applySendBwe(extensionId: number | undefined): void {
    const lease = this.lease;
    const config = this.options.bandwidthEstimation;
    if (!lease || !config) return;
    const next = extensionId ?? null;
    if (next === this.sendBweExtension) return;
    this.options.engine.setSendBwe(lease.endpoint, next === null ? null : { extensionId: next, initialBps: config.startBitrate, maxBps: config.maxBitrate });
    this.sendBweExtension = next;
  }

  /**
   * RFC 4588 §8: retransmissions go on the RTX stream ferry offered when the answer kept its
   * payload type (bound to the codec by apt), else as the packets were sent.
   */
  private applyRtx(answer: RemoteDescription): void {
    for (const st of this.streamStates) {
      const offer = st.rtxOffer;
      if (!offer) continue;
      const m = answer.media.find((x) => x.mid === st.info.mid);
      const primary = st.info.codec?.payloadType;
      st.rtxAccepted = m?.codecs.some((c) => c.name.toLowerCase() === 'rtx' && c.payloadType === offer.payloadType && (c.fmtp ?? '').replace(/\s/g, '').includes(`apt=${primary}`)) ?? false;
      if (st.info.output !== null) this.options.engine.setOutputRtx(st.info.output, st.rtxAccepted ? offer : null);
    }
  }

  /** RFC 4733: events offered on an audio m-line are negotiated when the answer kept their payload type. */
  private applyTelephoneEvent(answer: RemoteDescription): void {
    for (const st of this.streamStates) {
      const offered = st.info.telephoneEvent;
      if (offered === undefined || offered === null) continue;
      const m = answer.media.find((x) => x.mid === st.info.mid);
      const kept = m?.codecs.some((c) => c.name.toLowerCase() === 'telephone-event' && c.payloadType === offered) ?? false;
      st.info.telephoneEvent = kept ? offered : null;
    }
  }

  private ensureOutputs(): void {
    const lease = this.lease;
    if (!lease) return;
    for (const st of this.streamStates) {
      if (st.info.outputSsrc === null || st.info.output !== null || st.refused) continue;
      st.info.output = this.options.engine.addOutput(lease.endpoint, {
        ssrc: st.info.outputSsrc,
        payloadType: st.info.codec?.payloadType,
        ...(st.rtxOffer && st.rtxAccepted ? { rtxSsrc: st.rtxOffer.ssrc, rtxPayloadType: st.rtxOffer.payloadType } : {}),
      });
    }
  }

  private notifyStreams(): void {
    for (const l of [...this.streamListeners]) {
      try {
        l();
      } catch (err) {
        this.options.log?.warn({ err }, 'streams listener threw');
      }
    }
  }

  private startDtls(): void {
    if (!this.lease || !this.remote) return;
    this.dtls.start(this.remote.setup);
    this.reporter.dtlsStarted();
  }

  /** DTLS records go to the address ICE selected (none yet: dropped, the peer retransmits). */
  private sendDtls(data: Buffer): void {
    const to = this.remoteAddress;
    const lease = this.lease;
    if (!to || !lease || this.state === 'closed') return;
    try {
      this.options.engine.sendRaw(lease.endpoint, data, to);
    } catch {
      /* endpoint closed under us: the PeerConnection is ending */
    }
  }

  private onDtlsConnected(keys: SrtpParameters): void {
    if (this.state === 'closed' || !this.lease) return;
    this.options.engine.setSrtp(this.lease.endpoint, keys);
    this.srtpProfile = keys.profile;
    if (!this.apply('dtls-connected')) return;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.reporter.dtlsConnected();
    this.startDataChannels();
    this.options.events.webrtcUp();
  }

  // ---- data channels (RFC 8831) -----------------------------------------------------------------

  /** A description was made with (or without) an m=application: the association follows it. */
  private setDataSection(data: DataSectionState | null): void {
    if (!data || (this.dataSection && this.dataSection.mid !== data.mid)) this.stopDataChannels('data channel m-line removed');
    this.dataSection = data;
    if (data?.remote) this.dataChannels?.setRemoteMaxMessageSize(data.remote.maxMessageSize);
    this.startDataChannels();
  }

  /** The answer to ferry's offer: the peer's SCTP port and message size, or its refusal of the m-line. */
  private applyDataAnswer(answer: RemoteDescription): void {
    const section = this.dataSection;
    if (!section) return;
    const m = answer.media.find((x) => x.mid === section.mid);
    if (!m || m.rejected || !m.sctp) {
      this.setDataSection(null);
      return;
    }
    this.setDataSection({ ...section, remote: { ...m.sctp } });
  }

  /** Starts the association once DTLS is up and both sides' SCTP parameters are known. */
  private startDataChannels(): void {
    const section = this.dataSection;
    const config = this.options.dataChannels;
    const role = this.dtls.role;
    if (this.dataChannels || !section?.remote || !config || this.state !== 'connected' || !role) return;
    this.dataChannels = new DataChannels({
      localPort: section.localPort,
      remotePort: section.remote.port,
      maxMessageSize: config.maxMessageSize,
      remoteMaxMessageSize: section.remote.maxMessageSize,
      maxSendBuffer: config.maxSendBuffer,
      dtlsRole: role,
      sendPacket: (packet) => this.dtls.sendApplicationData(packet),
      onMessage: (message) => this.options.events.data?.(message),
      onReady: () => this.options.events.dataReady?.(),
      onClosed: (cause, reason) => this.options.log?.debug({ cause, reason }, 'SCTP association ended'),
      stats: config.stats,
      ...(this.options.log ? { log: this.options.log } : {}),
    });
  }

  private stopDataChannels(reason: string): void {
    this.dataChannels?.close(reason);
    this.dataChannels = null;
  }

  sendData(message: OutgoingDataMessage): boolean {
    const channels = this.dataChannels;
    if (!channels) {
      if (this.options.dataChannels) this.options.dataChannels.stats.sendRefused++;
      return false;
    }
    return channels.send(message);
  }

  /** One `slowlink` per m-line and direction per SLOWLINK_INTERVAL_MS. */
  private maybeSlowLink(stream: StreamState, uplink: boolean, lost: number): void {
    const key = `${uplink ? 'up' : 'down'}:${stream.info.mid}`;
    const now = Date.now();
    if (now - (this.lastSlowLink.get(key) ?? 0) < SLOWLINK_INTERVAL_MS) return;
    this.lastSlowLink.set(key, now);
    this.options.events.slowLink({ mid: stream.info.mid, media: stream.info.kind, uplink, lost });
  }

  private onEndpointEvent(event: EndpointEvent): void {
    if (this.state === 'closed') return;
    switch (event.type) {
      case 'ice-selected': {
        const first = this.remoteAddress === null;
        this.remoteAddress = event.address;
        this.apply('ice-selected');
        if (this.lease) this.reporter.selected(event.address, this.lease.port);
        if (first) this.dtls.peerReachable();
        break;
      }
      case 'dtls':
        this.remoteAddress ??= event.from;
        this.dtls.receive(event.data);
        break;
      case 'consent-lost':
        this.reporter.iceFailed();
        this.fail('ICE failed: consent lost');
        break;
      case 'source-loss': {
        // Loss on what the peer sends ferry: its uplink (Janus slowlink uplink=true).
        this.lostBySource.set(event.source, (this.lostBySource.get(event.source) ?? 0) + event.lost);
        const stream = this.streamStates.find((s) => s.info.sources.some((src) => src.source === event.source));
        if (!stream || event.expected === 0 || (event.lost * 256) / event.expected < SLOWLINK_FRACTION) break;
        this.maybeSlowLink(stream, true, event.lost);
        break;
      }
      case 'audio-level': {
        const stream = this.streamStates.find((s) => s.info.sources.some((src) => src.source === event.source));
        if (stream) this.audioLevelMetering?.listener(stream.info.mid, event.level);
        break;
      }
      case 'bandwidth-estimate': {
        const wasLimited = this.estimate?.limited ?? false;
        this.estimate = { bitrate: event.bitrate, lossPermille: event.lossPermille, rttMs: event.rttMs, limited: event.limited };
        // Janus's slowlink on what ferry sends: the link no longer carries the layers the
        // subscriber asked for. `lost` estimates the packets lost per second at this rate.
        if (event.limited && !wasLimited) {
          const lost = Math.round(((event.lossPermille / 1000) * event.bitrate) / (8 * 1200));
          for (const stream of this.streamStates.filter((s) => s.info.kind === 'video' && s.info.output !== null)) this.maybeSlowLink(stream, false, lost);
        }
        break;
      }
      case 'receiver-loss': {
        // Loss on what ferry sends (the client's receiver reports): downlink, uplink=false as Janus says.
        this.remoteLostBySsrc.set(event.ssrc, event.lost);
        const stream = this.streamStates.find((s) => s.info.outputSsrc === event.ssrc);
        if (!stream || event.fractionLost < SLOWLINK_FRACTION) break;
        this.maybeSlowLink(stream, false, event.lost);
        break;
      }
      case 'unknown-ssrc': {
        // An SSRC the SDP did not signal (simulcast by rid, or a browser that omits a=ssrc):
        // attribute it to the m-line that offered its rid, else to the m-line receiving that
        // payload type, when exactly one does.
        const rid = event.rid;
        const byRid = rid !== undefined ? this.streamStates.filter((s) => s.simulcastRids?.includes(rid)) : [];
        // A rid-simulcast m-line only takes SSRCs that name one of its rids.
        const candidates = byRid.length ? byRid : this.streamStates.filter((s) => s.recvPayloadType === event.payloadType && !s.simulcastRids);
        const only = candidates.length === 1 ? candidates[0] : undefined;
        if (only && only.info.sources.length < MAX_SIMULCAST_LAYERS) {
          this.addSource(only, event.ssrc, event.rid);
          this.notifyStreams();
        }
        break;
      }
      default:
        break;
    }
  }
}
