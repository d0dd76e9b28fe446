/**
 * One call of a SIP-plugin handle (SipHandle.ts): the SIP dialog it rides on
 * (a `Call` of ferry's SIP stack), the media bridge between the handle's
 * PeerConnection and plain RTP legs (MediaBridge.ts), and the SDP on both
 * sides: which SIP m-line is tied to which WebRTC m-line with which codec,
 * ferry's SIP-side descriptions (SdpBridge.ts), directions for hold
 * (RFC 3264 §6.1, §8.4) and re-offers from the peer (RFC 3264 §8).
 *
 * The handle decides when a call starts and ends and tells the client; a
 * SipCall is dropped by the handle's terminate(), which calls `end()`.
 */
import type { Logger } from 'pino';
import type { HandleMedia, Jsep } from '../../core/Media.js';
import type { SdesKeys } from '../../media/Routing.js';
import type { Call, CallEvents, InDialogRequestEvent } from '../../sip/Call.js';
import type { UserAgent } from '../../sip/UserAgent.js';
import { SipErrorCode, SipPluginError, wrongState } from './errors.js';
import type { BridgeLine, MediaBridge } from './MediaBridge.js';
import type { SipAccount } from './SipAccount.js';
import {
  SdpBridgeError, answerDirection, bridgeableWebRtcLines, firstBridgeable, parseSipSdp, rejectedMids, rtpProfile, telephoneEventFor, writeSipSdp,
  type BridgeKind, type Direction, type RtpProfile, type SipCodec, type SipMediaLine, type SipSdp, type SipSdpLine,
} from './SdpBridge.js';
import {
  SdesError, chooseOffered, formatCrypto, matchAnswer, newCrypto, offerSuites, sdesKeys, type CryptoLine, type SrtpPolicy,
} from './Sdes.js';

/**
 * The SIP side gets plain RTP: no header extensions are accepted from the browser, so none are
 * relayed to SIP phones (many predate RFC 8285) and nothing per-packet needs rewriting.
 */
export const SIP_BRIDGE_EXTENSIONS = { audioLevel: false, transportWideCc: false } as const;

/** A SIP m-line of the call and what it is tied to on the WebRTC side. */
interface LineMapping {
  sipIndex: number;
  kind: BridgeKind;
  mid: string;
  line: BridgeLine | null;
  /** Codecs ferry may use on this line (the offerer's list, or the one chosen). */
  codecs: SipCodec[];
  /** The SIP m-line as last seen from the peer (its direction, for hold and answers). */
  peerDirection: Direction;
  /** What ferry writes for this line (rejected lines are written as port 0). */
  rejected: { type: string; proto: string; format: string } | null;
  /** RTP/AVP, or RTP/SAVP (SDES-SRTP mandatory). */
  profile: RtpProfile;
  /**
   * SDES (Sdes.ts): ferry's crypto lines (several in an offer, the one agreed
   * once answered) and the peer's, once known; both set means SRTP on the leg.
   */
  localCrypto: CryptoLine[];
  remoteCrypto: CryptoLine | null;
  /** RFC 4733 telephone-event on the SIP side: what ferry offered, then what was agreed (empty: none). */
  events: SipCodec[];
}

/**
 * How the browser's DTMF reaches the SIP peer (ferry's `dtmf_method`; Janus's SIP plugin relays
 * RTP as it comes): `rfc4733` negotiates telephone-event with the peer and passes events through
 * (SIP INFO when the peer has none); `info` never negotiates it, so every digit becomes a SIP
 * INFO (application/dtmf-relay).
 */
export type DtmfMethod = 'rfc4733' | 'info';

/** Janus's `update` answers the browser's re-offer with the same media: events included. */
export const SIP_BRIDGE_TELEPHONE_EVENT = true;

let nextSdpSession = Math.floor(Date.now() / 1000);

export class SipCall {
  sip: Call | null = null;
  offerless = false;
  peerUri = '';
  peerDisplay: string | undefined;
  callee = '';
  /** The browser's offer (outgoing calls, accepted offerless INVITEs). */
  webrtcOffer: Jsep | null = null;
  /** The SIP peer's offer (incoming INVITE with SDP). */
  sipOffer: SipSdp | null = null;
  lines: LineMapping[] = [];
  localSipSdp: string | null = null;
  readonly sdpSession = nextSdpSession++;
  sdpVersion = 1;
  /** The browser already got its JSEP answer (from a 183 before the 200). */
  browserAnswered = false;
  localHold: Direction | null = null;
  /** The client's `srtp` for ferry's offers (call, accept of an offerless INVITE). */
  srtp: SrtpPolicy | null = null;
  /** The client's `srtp_profile`: the one suite ferry offers (else Sdes.ts's defaults). */
  srtpProfile: string | undefined;
  /** What the peer's offer asked for (Janus's `srtp` in `incomingcall`). */
  peerSrtp: SrtpPolicy | null = null;
  dtmfMethod: DtmfMethod = 'rfc4733';
  private readonly removers: Array<() => void> = [];

  constructor(
    readonly ua: UserAgent,
    readonly account: SipAccount,
    readonly direction: 'incoming' | 'outgoing',
    /** The SIP Call-ID (known once the INVITE exists). */
    public callId: string,
    readonly bridge: MediaBridge,
    /** c= address of ferry's SIP-side SDP. */
    private readonly sdpAddress: string,
  ) {}

  /** Listens to the SIP call until `end()`. */
  listen<K extends keyof CallEvents>(call: Call, event: K, fn: (...args: CallEvents[K]) => void): void {
    call.on(event, fn);
    this.removers.push(() => call.off(event, fn));
  }

  /**
   * Ends both sides: stops listening to the SIP call, ends it (`endSip`, or
   * BYE/CANCEL/480 as its state asks) unless it already ended, and releases
   * the RTP legs. Nothing here tells the client.
   */
  end(logger: Logger, endSip?: () => void, sipHeaders: Array<[string, string]> = []): void {
    for (const r of this.removers.splice(0)) r();
    const call = this.sip;
    try {
      if (endSip) endSip();
      else if (call && !call.terminated) this.ua.bye(call, sipHeaders);
    } catch (err) {
      logger.debug({ err }, 'sip: ending the SIP side failed (already ended)');
    }
    this.bridge.close();
  }

  // ------------------------------------------------------------------ SDP, both ways

  /** The SIP peer offered: ferry offers the browser one section per bridgeable SIP m-line. */
  async offerToBrowser(sdp: string, openMedia: () => HandleMedia): Promise<Jsep> {
    const offer = parseSipSdp(sdp);
    this.sipOffer = offer;
    const sections: Array<{ mid: string; kind: BridgeKind; codec: SipCodec; direction: Direction; events: SipCodec | undefined }> = [];
    const refused: string[] = [];
    for (const m of offer.media) {
      const codec = firstBridgeable(m);
      const keying = codec && m.kind !== 'other' ? answerKeying(m) : { error: 'no codec ferry can bridge' };
      if (codec && m.kind !== 'other' && !('error' in keying)) {
        const mid = String(sections.length);
        const events = m.kind === 'audio' ? telephoneEventFor(m.codecs, codec.clockRate) : undefined;
        sections.push({ mid, kind: m.kind, codec, direction: m.direction, events });
        this.lines.push({ sipIndex: m.index, kind: m.kind, mid, line: null, codecs: [codec], peerDirection: m.direction, rejected: null, ...keying, events: events ? [events] : [] });
        if (keying.remoteCrypto) this.peerSrtp = keying.profile === 'RTP/SAVP' || this.peerSrtp === 'sdes_mandatory' ? 'sdes_mandatory' : 'sdes_optional';
      } else {
        if ('error' in keying) refused.push(`m-line ${m.index} (${m.type}): ${keying.error}`);
        this.lines.push({
          sipIndex: m.index, kind: 'audio', mid: '', line: null, codecs: [], peerDirection: m.direction,
          rejected: { type: m.type, proto: m.proto, format: m.firstFormat }, profile: 'RTP/AVP', localCrypto: [], remoteCrypto: null, events: [],
        });
      }
    }
    if (sections.length === 0) throw new SdpBridgeError(`nothing in the offer ferry can bridge: ${refused.join('; ')}`);
    const media = openMedia();
    const jsep = await media.createOffer!(
      sections.map((s) => ({
        mid: s.mid,
        kind: s.kind,
        codec: { name: s.codec.name, clockRate: s.codec.clockRate, payloadType: s.codec.payloadType, ...(s.codec.channels ? { channels: s.codec.channels } : {}), ...(s.codec.fmtp ? { fmtp: s.codec.fmtp } : {}) },
        // ferry relays: what the SIP peer does is what ferry does towards the browser.
        direction: s.direction,
        // The browser may always send DTMF (as events, or as SIP INFO when the peer has none);
        // the peer's numbering is kept when it has them, so most events cross unrenumbered.
        ...(s.kind === 'audio' ? { telephoneEvent: { ...(s.events ? { payloadType: s.events.payloadType } : {}) } } : {}),
      })),
    );
    this.bridge.attachWebRtc(routable(media));
    return jsep;
  }

  /** ferry's SIP answer to the peer's offer, after the browser answered ferry's WebRTC offer. */
  sipAnswerFromBrowser(browserAnswer: Jsep): string {
    const offer = this.sipOffer;
    if (!offer) throw wrongState('no SIP offer to answer');
    const rejected = rejectedMids(browserAnswer.sdp);
    const out: SipSdpLine[] = [];
    let accepted = 0;
    for (const mapping of this.lines) {
      const m = offer.media[mapping.sipIndex];
      if (!m) continue;
      const codec = mapping.codecs[0];
      if (mapping.rejected || !codec || rejected.has(mapping.mid)) {
        out.push({ rejected: true, type: m.type, proto: m.proto, format: m.firstFormat });
        continue;
      }
      const line = this.bridge.openLine(mapping.kind);
      mapping.line = line;
      if (this.dtmfMethod === 'info') mapping.events = [];
      this.bridge.configure(line, { mid: mapping.mid, sipCodec: codec, remote: m.address && m.port ? { address: m.address, port: m.port } : null, ssrcs: m.ssrcs, srtp: keysOf(mapping), events: mapping.events[0] ?? null });
      this.applyPeerDirection(mapping, m.direction);
      out.push({ kind: mapping.kind, port: line.leg.port, codecs: [codec, ...mapping.events], direction: answerDirection(m.direction), ...written(mapping) });
      accepted++;
    }
    if (accepted === 0) throw new SipPluginError(SipErrorCode.MISSING_SDP, 'The JSEP answer accepted no m-line');
    return this.writeSdp(out);
  }

  /** ferry's SIP offer from the browser's offer: every bridgeable codec, the browser's payload types. */
  sipOfferFromBrowser(browserOffer: Jsep): string {
    const lines = bridgeableWebRtcLines(browserOffer.sdp);
    if (lines.length === 0) throw new SipPluginError(SipErrorCode.MISSING_SDP, 'The JSEP offer has no m-line with a codec a SIP peer can take unchanged');
    // RFC 4568 §7.1.1: one crypto line per suite offered, each with its own tag and key.
    const suites = this.srtp ? offerSuites(this.srtpProfile) : [];
    const out: SipSdpLine[] = [];
    lines.forEach((w, sipIndex) => {
      const line = this.bridge.openLine(w.kind);
      const mapping: LineMapping = {
        sipIndex, kind: w.kind, mid: w.mid, line, codecs: w.codecs, peerDirection: 'sendrecv', rejected: null,
        profile: this.srtp === 'sdes_mandatory' ? 'RTP/SAVP' : 'RTP/AVP',
        localCrypto: suites.map((suite, i) => newCrypto(i + 1, suite)),
        remoteCrypto: null,
        events: this.dtmfMethod === 'rfc4733' ? w.events : [],
      };
      this.lines.push(mapping);
      out.push({ kind: w.kind, port: line.leg.port, codecs: [...w.codecs, ...mapping.events], direction: w.direction, ...written(mapping) });
    });
    return this.writeSdp(out);
  }

  private writeSdp(lines: SipSdpLine[]): string {
    const sdp = writeSipSdp({ sessionId: this.sdpSession, version: this.sdpVersion++, address: this.sdpAddress, lines });
    this.localSipSdp = sdp;
    return sdp;
  }

  /**
   * The SIP peer answered ferry's offer (in a 183, a 200, or the ACK of an
   * offerless INVITE): ties each line to its codec and the peer's address,
   * then answers the browser (over `media`, the handle's PeerConnection) with
   * the codecs the peer chose.
   */
  async answerBrowser(sipAnswer: string, media: HandleMedia | null): Promise<Jsep> {
    const answer = parseSipSdp(sipAnswer);
    const codecs: { audio?: string[]; video?: string[] } = {};
    for (const mapping of this.lines) {
      const m = answer.media[mapping.sipIndex];
      if (!m || m.port === 0 || !mapping.line) continue;
      // RFC 3264 §6.1: the answer keeps the offer's transport protocol.
      if (rtpProfile(m) !== mapping.profile) throw new SdpBridgeError(`m-line ${m.index}: answered with ${m.proto}, offered ${mapping.profile}`);
      // RFC 3264 §6.1: the answer's codecs are a subset of the offer's (matched by name and rate).
      const codec = m.codecs.find((c) => mapping.codecs.some((o) => sameCodec(o, c)));
      if (!codec) continue;
      this.keyAnswer(mapping, m);
      // RFC 4733 at the chosen codec's rate, if ferry offered it at that rate.
      const events = mapping.events.some((e) => e.clockRate === codec.clockRate) ? telephoneEventFor(m.codecs, codec.clockRate) : undefined;
      mapping.events = events ? [events] : [];
      this.bridge.configure(mapping.line, { mid: mapping.mid, sipCodec: codec, remote: m.address ? { address: m.address, port: m.port } : null, ssrcs: m.ssrcs, srtp: keysOf(mapping), events: events ?? null });
      this.applyPeerDirection(mapping, m.direction);
      mapping.codecs = [codec];
      codecs[mapping.kind] ??= [codec.name];
    }
    if (!codecs.audio && !codecs.video) throw new SdpBridgeError('the SIP answer accepted no codec ferry offered');
    const offer = this.webrtcOffer;
    if (!offer || !media) throw wrongState('the PeerConnection is gone');
    const jsep = await media.createAnswer(offer, { audio: !!codecs.audio, video: !!codecs.video, data: false, codecs, extensions: SIP_BRIDGE_EXTENSIONS, telephoneEvent: SIP_BRIDGE_TELEPHONE_EVENT });
    this.bridge.attachWebRtc(routable(media));
    this.browserAnswered = true;
    return jsep;
  }

  /**
   * RFC 4568 §7.1.3: the peer's answer to ferry's crypto lines. A line ferry
   * offered crypto on is SRTP when the answer keys it; unkeyed, it is plain
   * RTP unless the client mandated SRTP (SdesError, and the call ends).
   */
  private keyAnswer(mapping: LineMapping, m: SipMediaLine): void {
    if (mapping.localCrypto.length === 0) {
      if (m.crypto.length > 0) throw new SdesError(`m-line ${m.index}: the answer keys SRTP ferry did not offer`);
      return;
    }
    if (m.crypto.length === 0) {
      if (this.srtp === 'sdes_mandatory' || mapping.profile === 'RTP/SAVP') throw new SdesError(`m-line ${m.index}: SDES-SRTP is mandatory and the answer has no a=crypto`);
      mapping.localCrypto = [];
      return;
    }
    const { local, remote } = matchAnswer(mapping.localCrypto, m.crypto);
    mapping.localCrypto = [local];
    mapping.remoteCrypto = remote;
  }

  /**
   * A re-INVITE or UPDATE from the SIP peer (RFC 3264 §8): new address,
   * hold/resume by direction. ferry answers it itself with the same codecs
   * (no WebRTC renegotiation is needed for either); a change of codec or an
   * added stream it cannot bridge gets 488, keeping the call as it was.
   * (`autoaccept_reinvites: false` is accepted for compatibility but changes
   * nothing: no re-offer ferry can take needs the browser.)
   */
  answerReoffer(ev: InDialogRequestEvent): void {
    if (!this.localSipSdp) return ev.respond(491);
    if (ev.body === null) {
      // Offerless re-INVITE (session refresh): our current description is the offer; the media stays as is.
      return ev.respond(200, this.localSipSdp);
    }
    let offer: SipSdp;
    try {
      offer = parseSipSdp(ev.body);
    } catch {
      return ev.respond(400);
    }
    const out: SipSdpLine[] = [];
    for (const m of offer.media) {
      const mapping = this.lines.find((l) => l.sipIndex === m.index);
      const codec = mapping?.codecs[0];
      if (!mapping || !mapping.line || !codec || m.port === 0) {
        out.push({ rejected: true, type: m.type, proto: m.proto, format: m.firstFormat });
        continue;
      }
      const offered = m.codecs.find((c) => sameCodec(c, codec));
      if (!offered || rtpProfile(m) === null) return ev.respond(488);
      const rekeyed = reofferKeying(mapping, m);
      if ('error' in rekeyed) return ev.respond(488, null, [['Warning', `399 ferry "${rekeyed.error}"`]]);
      Object.assign(mapping, rekeyed);
      if (m.address) this.bridge.setRemote(mapping.line, { address: m.address, port: m.port });
      this.bridge.setSrtp(mapping.line, keysOf(mapping));
      // RFC 4733 stays while the peer still offers it (never added mid-call).
      const events = mapping.events.length > 0 ? telephoneEventFor(m.codecs, codec.clockRate) : undefined;
      if ((events?.payloadType ?? null) !== (mapping.events[0]?.payloadType ?? null)) this.bridge.setSipEvents(mapping.line, events ?? null);
      mapping.events = events ? [events] : [];
      this.applyPeerDirection(mapping, m.direction);
      out.push({ kind: mapping.kind, port: mapping.line.leg.port, codecs: [codec, ...mapping.events], direction: this.localDirection(answerDirection(m.direction)), ...written(mapping) });
    }
    ev.respond(200, this.writeSdp(out));
  }

  /** The peer's direction decides whether ferry sends it media (RFC 3264 §6.1, §8.4). */
  private applyPeerDirection(mapping: LineMapping, peer: Direction): void {
    mapping.peerDirection = peer;
    if (!mapping.line) return;
    const peerReceives = peer === 'sendrecv' || peer === 'recvonly';
    const weSend = this.localHold === null || this.localHold === 'sendonly';
    this.bridge.setSendPaused(mapping.line, !(peerReceives && weSend));
  }

  /** Our direction, narrowed by a hold we asked for. */
  private localDirection(wanted: Direction): Direction {
    if (this.localHold === null) return wanted;
    const send = (wanted === 'sendrecv' || wanted === 'sendonly') && this.localHold === 'sendonly';
    const recv = (wanted === 'sendrecv' || wanted === 'recvonly') && this.localHold === 'recvonly';
    return send ? 'sendonly' : recv ? 'recvonly' : 'inactive';
  }

  /** `hold` (direction) or `unhold` (null): ferry's new SIP offer, with what ferry sends paused to match. */
  holdOffer(direction: Direction | null): string {
    this.localHold = direction;
    const out: SipSdpLine[] = [];
    const offer = this.sipOffer;
    for (const mapping of this.lines) {
      if (!mapping.line || mapping.rejected) {
        const m = offer?.media[mapping.sipIndex];
        out.push({ rejected: true, type: m?.type ?? mapping.rejected?.type ?? mapping.kind, proto: m?.proto ?? 'RTP/AVP', format: m?.firstFormat ?? '0' });
        continue;
      }
      out.push({ kind: mapping.kind, port: mapping.line.leg.port, codecs: [...mapping.codecs, ...mapping.events], direction: direction ?? 'sendrecv', ...written(mapping) });
      this.applyPeerDirection(mapping, mapping.peerDirection);
    }
    return this.writeSdp(out);
  }

  /** The codec of each bridged kind, for answering a browser's re-offer with the same media. */
  bridgedCodecs(): { audio?: string[]; video?: string[] } {
    const codecs: { audio?: string[]; video?: string[] } = {};
    for (const m of this.lines) if (m.line && m.codecs[0]) codecs[m.kind] ??= [m.codecs[0].name];
    return codecs;
  }

  /** RFC 3264 §8: the same media, a new version of ferry's description (for a session refresh). */
  refreshedOffer(): string {
    const sdp = (this.localSipSdp ?? '').replace(/^(o=\S+ \S+ )(\d+)/m, (_m, head: string) => `${head}${this.sdpVersion++}`);
    this.localSipSdp = sdp;
    return sdp;
  }
}

/** What ferry writes for a line's transport: its profile and crypto lines. */
function written(mapping: LineMapping): { profile: RtpProfile; crypto: string[] } {
  return { profile: mapping.profile, crypto: mapping.localCrypto.map(formatCrypto) };
}

/** The leg's SRTP keys once both directions are keyed; null for plain RTP. */
function keysOf(mapping: LineMapping): SdesKeys | null {
  const local = mapping.localCrypto[0];
  return local && mapping.remoteCrypto && mapping.localCrypto.length === 1 ? sdesKeys(local, mapping.remoteCrypto) : null;
}

/**
 * RFC 4568 §7.1.2 for a peer's offered m-line: the first crypto line ferry
 * can run keys it, with a fresh key of ferry's under the same tag and suite.
 * RTP/SAVP needs one; RTP/AVP with none usable stays plain.
 */
function answerKeying(m: SipMediaLine): Pick<LineMapping, 'profile' | 'localCrypto' | 'remoteCrypto'> | { error: string } {
  const profile = rtpProfile(m);
  if (!profile) return { error: `transport ${m.proto} is not RTP/AVP or RTP/SAVP` };
  const { chosen, reasons } = chooseOffered(m.crypto);
  if (!chosen) {
    if (profile === 'RTP/SAVP') return { error: m.crypto.length ? `no usable a=crypto (${reasons.join('; ')})` : 'RTP/SAVP without a=crypto (ferry keys SRTP by SDES only)' };
    return { profile, localCrypto: [], remoteCrypto: null };
  }
  return { profile, localCrypto: [newCrypto(chosen.tag, chosen.suite)], remoteCrypto: chosen };
}

/**
 * A peer's re-offer on a line already set up (RFC 4568 §7.1.4): an SRTP line
 * stays SRTP (the peer may change its key or suite; ferry keeps its key unless
 * the suite changes); a plain line stays plain (a leg's SRTP cannot be turned off
 * and ferry does not turn it on mid-call).
 */
function reofferKeying(mapping: LineMapping, m: SipMediaLine): Pick<LineMapping, 'profile' | 'localCrypto' | 'remoteCrypto'> | { error: string } {
  const keyed = answerKeying(m);
  if ('error' in keyed) return keyed;
  if (!mapping.remoteCrypto) {
    if (keyed.profile === 'RTP/SAVP') return { error: 'SRTP cannot be started on a plain RTP call' };
    return { profile: mapping.profile, localCrypto: [], remoteCrypto: null };
  }
  if (!keyed.remoteCrypto) return { error: 'SRTP cannot be stopped mid-call' };
  const current = mapping.localCrypto[0];
  const local = current && current.suite === keyed.remoteCrypto.suite ? { ...current, tag: keyed.remoteCrypto.tag } : keyed.localCrypto[0]!;
  return { profile: keyed.profile, localCrypto: [local], remoteCrypto: keyed.remoteCrypto };
}

function sameCodec(a: SipCodec, b: SipCodec): boolean {
  return a.name.toLowerCase() === b.name.toLowerCase() && a.clockRate === b.clockRate;
}

function routable(media: HandleMedia): { streams: NonNullable<HandleMedia['streams']>; onStreamsChanged: NonNullable<HandleMedia['onStreamsChanged']> } | null {
  if (!media.streams || !media.onStreamsChanged) return null;
  return { streams: media.streams.bind(media), onStreamsChanged: media.onStreamsChanged.bind(media) };
}
