// ferry's local descriptions, built from what the remote offered (answers) or
// what a plugin asked for (offers) and from the previous negotiation: each
// m-line's codec, direction, SSRCs, header extensions, simulcast rids and RFC
// 4588 RTX stream, and the StreamState the PeerConnection keeps for it. Pure:
// no engine, no I/O; the PeerConnection applies what these return.
import { randomInt } from 'node:crypto';

import { JanusError, JanusErrorCode } from '../core/JanusError.js';
import type { AnswerOptions, DataOfferSection, MediaStreamInfo, NegotiatedCodec, OfferSection } from '../core/Media.js';
import {
  answerDirection,
  writeLocalDescription,
  type Codec,
  type DtlsSetup,
  type LocalMediaSection,
  type LocalTransport,
  type RemoteDescription,
  type RemoteMediaSection,
} from './Sdp.js';

/** Codec preference when ferry answers: the first the offer has wins. */
const PREFERRED_CODECS: Record<'audio' | 'video', string[]> = {
  audio: ['opus', 'pcmu', 'pcma', 'g722'],
  video: ['vp8', 'h264', 'vp9', 'av1'],
};
/** RFC 8852 RtpStreamId: the rid of a simulcast layer, in every packet of it. */
export const RID_EXTENSION_URI = 'urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id';
/** RFC 8843 §15.2 MID extension: offerers sending rid simulcast need it accepted to send unsignalled SSRCs. */
const MID_EXTENSION_URI = 'urn:ietf:params:rtp-hdrext:sdes:mid';
/** RFC 6464 client-to-mixer audio level, accepted on audio m-lines ferry receives (VideoRoom talking events). */
const AUDIO_LEVEL_EXTENSION_URI = 'urn:ietf:params:rtp-hdrext:ssrc-audio-level';
/**
 * Transport-wide sequence numbers (draft-holmer-rmcat-transport-wide-cc-extensions-01): on
 * m-lines ferry receives, the engine answers them with transport-cc feedback, which is what
 * lets a browser's bandwidth estimate (and so its bitrate and simulcast layers) ramp up.
 */
export const TWCC_EXTENSION_URI = 'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01';
/**
 * The id ferry offers the transport-wide sequence number under on m-lines it sends (its
 * subscribers' estimate); one id for the whole BUNDLE group (RFC 8843 §9.1), and the only
 * extension ferry's offers carry, so any id of the one-byte form (RFC 8285 §4.2) does.
 */
export const TWCC_OFFER_EXTENSION_ID = 3;
/** Layers ferry takes per m-line (Janus: three substreams). */
export const MAX_SIMULCAST_LAYERS = 3;

/** RFC 8841 §5: the SCTP port ferry uses (the one every WebRTC stack uses). */
export const LOCAL_SCTP_PORT = 5000;

/** RTCP feedback ferry supports and keeps in answers. */
const SUPPORTED_FEEDBACK = new Set(['nack', 'nack pli', 'ccm fir', 'goog-remb', 'transport-cc']);

/** One m-line as ferry negotiated it: what the PeerConnection routes and what the next negotiation carries over. */
export interface StreamState {
  info: MediaStreamInfo;
  remote: RemoteMediaSection | null;
  /** Payload type this m-line receives with (to attribute unsignalled SSRCs). */
  recvPayloadType: number | null;
  /** The remote answer rejected this offered m-line or will not receive on it: no output. */
  refused?: boolean;
  /** rids accepted for simulcast (RFC 8853): its layers are the SSRCs packets name with these rids. */
  simulcastRids?: string[];
  /** The RFC 6464 extension id the answer accepted on this audio m-line. */
  audioLevelExtension?: number;
  /** RFC 4588 stream ferry offered for retransmissions on this m-line, and whether the answer took it. */
  rtxOffer?: { payloadType: number; ssrc: number };
  rtxAccepted?: boolean;
  /** RTX payload type the remote sends retransmissions with (its SSRCs come from a=ssrc-group:FID). */
  rtxReceive?: number;
}

function codecKey(c: Codec): NegotiatedCodec {
  return { name: c.name, payloadType: c.payloadType, clockRate: c.clockRate, channels: c.channels, fmtp: c.fmtp };
}

function chooseCodec(m: RemoteMediaSection, allowed?: string[]): Codec | null {
  if (m.kind !== 'audio' && m.kind !== 'video') return null;
  const order = allowed?.length ? allowed.map((c) => c.toLowerCase()) : PREFERRED_CODECS[m.kind];
  for (const name of order) {
    const c = m.codecs.find((x) => x.name.toLowerCase() === name);
    if (c) return { ...c, rtcpFb: c.rtcpFb.filter((f) => SUPPORTED_FEEDBACK.has(f.subtype ? `${f.type} ${f.subtype}` : f.type)) };
  }
  return null;
}

/**
 * The data-channel m-line as negotiated (RFC 8841): ferry's SCTP port and, once the remote
 * description is known, the peer's port and largest message.
 */
export interface DataSectionState {
  mid: string;
  index: number;
  localPort: number;
  remote: { port: number; maxMessageSize: number } | null;
  /** The peer wrote the pre-RFC form (a=sctpmap), so ferry answers in it too. */
  legacy: boolean;
}

/** What a new local description carries over from the previous one, and how ferry names its streams. */
export interface BuildContext {
  /** The previous negotiation's m-lines by mid: their SSRCs, sources and outputs carry over. */
  previous: ReadonlyMap<string, StreamState>;
  /** cname (and default msid stream) of every m-line ferry sends on. */
  streamName: string;
  /** ICE credentials, certificate fingerprint and candidates; a=setup is chosen here. */
  transport: Omit<LocalTransport, 'setup'>;
  /**
   * Offers: m-lines ferry sends on offer transport-wide sequence numbers and transport-cc
   * feedback, for send-side bandwidth estimation.
   */
  transportCc?: boolean;
  /** Data channels: the a=max-message-size ferry announces (absent: m=application is refused). */
  dataChannels?: { maxMessageSize: number };
}

export interface AnswerContext extends BuildContext {
  /** The RtpStreamId and transport-wide-cc extension ids the endpoint reads (undefined: it does not). */
  ridExtension: number | undefined;
  twccExtension: number | undefined;
}

export interface LocalDescription {
  sdp: string;
  states: StreamState[];
  /** The data-channel m-line, when the description has one. */
  data: DataSectionState | null;
}

/**
 * ferry's answer to `offer` (RFC 3264 §6): per m-line the first codec of `options` (or of
 * ferry's preference) the offer has, else the m-line rejected; a=setup passive unless the
 * offerer is passive (RFC 8842 §5.3), which decides ferry's DTLS role.
 */
export function buildAnswer(offer: RemoteDescription, options: AnswerOptions, context: AnswerContext): LocalDescription & { setup: DtlsSetup } {
  const sections: LocalMediaSection[] = [];
  const states: StreamState[] = [];
  let data: DataSectionState | null = null;
  for (const m of offer.media) {
    // RFC 8841: one SCTP association per transport, so the first data m-line is the one taken.
    if (m.kind === 'application' && m.sctp && !m.rejected && options.data && context.dataChannels && data === null) {
      data = { mid: m.mid, index: m.index, localPort: LOCAL_SCTP_PORT, remote: { ...m.sctp }, legacy: m.protocol === 'DTLS/SCTP' };
      sections.push({ mid: m.mid, kind: 'application', codec: null, direction: 'sendrecv', sctp: { port: LOCAL_SCTP_PORT, maxMessageSize: context.dataChannels.maxMessageSize, legacy: data.legacy } });
      continue;
    }
    const wanted = m.kind === 'audio' ? options.audio : m.kind === 'video' ? options.video : false;
    const allowed = m.kind === 'audio' ? options.codecs?.audio : m.kind === 'video' ? options.codecs?.video : undefined;
    const codec = !m.rejected && wanted ? chooseCodec(m, allowed) : null;
    if (!codec || (m.kind !== 'audio' && m.kind !== 'video')) {
      // Rejected with the offer's own media type, transport and first format (RFC 3264 §6).
      const format = m.formats[0];
      sections.push({ mid: m.mid, kind: m.kind, codec: null, direction: 'inactive', ...(format && m.protocol ? { rejected: { mediaType: m.mediaType, protocol: m.protocol, format } } : {}) });
      continue;
    }
    const direction = answerDirection(m.direction, true, true);
    const sends = direction === 'sendrecv' || direction === 'sendonly';
    const prev = context.previous.get(m.mid);
    const outputSsrc = prev?.info.outputSsrc ?? randomInt(1, 0xffffffff);
    const section: LocalMediaSection = {
      mid: m.mid,
      kind: m.kind,
      codec,
      direction,
      ssrc: sends ? outputSsrc : undefined,
      cname: context.streamName,
      msid: { stream: context.streamName, track: `${m.kind}-${m.mid}` },
    };
    // RFC 8853 simulcast by rid: accepted when ferry receives here and can read the rid
    // (the RtpStreamId extension, with the id the endpoint was opened with).
    const ridExtension = m.extensions.find((e) => e.uri === RID_EXTENSION_URI);
    const sendRids = m.rids.filter((r) => r.direction === 'send').map((r) => r.id);
    const receives = direction === 'sendrecv' || direction === 'recvonly';
    const accepted: { id: number; uri: string }[] = [];
    if (receives && ridExtension && ridExtension.id === context.ridExtension && sendRids.length > 1) {
      section.recvRids = sendRids.slice(0, MAX_SIMULCAST_LAYERS);
      accepted.push(...m.extensions.filter((e) => e.uri === RID_EXTENSION_URI || e.uri === MID_EXTENSION_URI));
    }
    const audioLevel = receives && m.kind === 'audio' && options.extensions?.audioLevel !== false ? m.extensions.find((e) => e.uri === AUDIO_LEVEL_EXTENSION_URI) : undefined;
    if (audioLevel) accepted.push(audioLevel);
    const twcc = receives && options.extensions?.transportWideCc !== false ? m.extensions.find((e) => e.uri === TWCC_EXTENSION_URI && e.id === context.twccExtension) : undefined;
    if (twcc) accepted.push(twcc);
    // transport-cc feedback is promised only where the engine reads the sequence numbers.
    else section.codec = { ...codec, rtcpFb: codec.rtcpFb.filter((f) => f.type !== 'transport-cc') };
    if (accepted.length) section.extensions = accepted;
    // RFC 4733 beside the audio codec, at its clock rate, when the plugin relays events.
    const telephoneEvent = options.telephoneEvent && m.kind === 'audio'
      ? m.codecs.find((c) => c.name.toLowerCase() === 'telephone-event' && c.clockRate === codec.clockRate)?.payloadType
      : undefined;
    if (telephoneEvent !== undefined) section.telephoneEvent = telephoneEvent;
    // RFC 4588: take the offerer's RTX for the chosen codec where its RTX SSRCs are signalled
    // (a=ssrc-group:FID; rid simulcast names them only in packets), and offer ferry's own
    // RTX stream back where ferry sends.
    const offeredRtx = m.kind === 'video' && !section.recvRids && codec.rtcpFb.some((f) => f.type === 'nack' && !f.subtype)
      ? m.codecs.find((c) => c.name.toLowerCase() === 'rtx' && (c.fmtp ?? '').replace(/\s/g, '').split(';').includes(`apt=${codec.payloadType}`))
      : undefined;
    let rtxOffer: StreamState['rtxOffer'];
    if (offeredRtx) {
      rtxOffer = { payloadType: offeredRtx.payloadType, ssrc: prev?.rtxOffer?.ssrc ?? randomInt(1, 0xffffffff) };
      section.rtx = sends ? rtxOffer : { payloadType: offeredRtx.payloadType };
    }
    sections.push(section);
    states.push({
      ...(rtxOffer ? { rtxOffer, rtxAccepted: true, rtxReceive: receives ? rtxOffer.payloadType : undefined } : {}),
      remote: m,
      ...(section.recvRids ? { simulcastRids: section.recvRids } : {}),
      ...(audioLevel ? { audioLevelExtension: audioLevel.id } : {}),
      recvPayloadType: direction === 'sendrecv' || direction === 'recvonly' ? codec.payloadType : null,
      info: {
        mid: m.mid,
        index: m.index,
        kind: m.kind,
        codec: codecKey(codec),
        sources: prev?.info.sources ?? [],
        output: prev?.info.output ?? null,
        outputSsrc: sends ? outputSsrc : null,
        ...(telephoneEvent !== undefined ? { telephoneEvent } : {}),
        ...(accepted.length ? { extensions: accepted.map((e) => ({ id: e.id, uri: e.uri })) } : {}),
      },
    });
  }
  if (!states.length && !data) throw new JanusError(JanusErrorCode.JSEP_INVALID_SDP, 'Invalid SDP: no m-line ferry can accept');
  const setup: DtlsSetup = offer.setup === 'passive' ? 'active' : 'passive';
  return { sdp: writeLocalDescription({ ...context.transport, setup }, sections), setup, states, data };
}

/**
 * ferry's offer of `sections` (a=setup actpass): payload types kept distinct across m-lines, RTX
 * offered on video ferry sends, and at most one data-channel m-line (RFC 8841).
 */
export function buildOffer(sections: (OfferSection | DataOfferSection)[], context: BuildContext & { previousData?: DataSectionState | null }): LocalDescription {
  const local: LocalMediaSection[] = [];
  const states: StreamState[] = [];
  const usedPts = new Set<number>();
  let data: DataSectionState | null = null;
  sections.forEach((s, index) => {
    const mid = s.mid ?? String(index);
    if (s.kind === 'data') {
      if (data !== null || !context.dataChannels) throw new JanusError(JanusErrorCode.UNKNOWN, 'Data channels: at most one m=application, and only when enabled');
      const prevData = context.previousData?.mid === mid ? context.previousData : null;
      data = { mid, index, localPort: LOCAL_SCTP_PORT, remote: prevData?.remote ?? null, legacy: false };
      local.push({ mid, kind: 'application', codec: null, direction: 'sendrecv', sctp: { port: LOCAL_SCTP_PORT, maxMessageSize: context.dataChannels.maxMessageSize } });
      return;
    }
    const prev = context.previous.get(mid);
    let pt = s.codec.payloadType ?? (s.kind === 'audio' ? 111 : 96);
    while (usedPts.has(pt)) pt++;
    usedPts.add(pt);
    const codec: Codec = {
      payloadType: pt,
      name: s.codec.name,
      clockRate: s.codec.clockRate,
      channels: s.codec.channels,
      fmtp: s.codec.fmtp,
      rtcpFb: s.codec.rtcpFb ?? (s.kind === 'video' ? [{ type: 'nack' }, { type: 'nack', subtype: 'pli' }, { type: 'ccm', subtype: 'fir' }] : []),
    };
    const sends = s.direction === 'sendonly' || s.direction === 'sendrecv';
    const outputSsrc = prev?.info.outputSsrc ?? randomInt(1, 0xffffffff);
    // The receiver's transport-cc feedback on what ferry sends drives its estimate.
    const transportCc = sends && context.transportCc === true;
    if (transportCc && !codec.rtcpFb.some((f) => f.type === 'transport-cc')) codec.rtcpFb = [...codec.rtcpFb, { type: 'transport-cc' }];
    // Video ferry sends and answers NACKs for: offer an RFC 4588 stream to retransmit on.
    let rtxOffer: StreamState['rtxOffer'];
    if (sends && s.kind === 'video' && codec.rtcpFb.some((f) => f.type === 'nack' && !f.subtype)) {
      let rtxPt = prev?.rtxOffer?.payloadType ?? pt + 1;
      while (usedPts.has(rtxPt) || rtxPt > 127) rtxPt = rtxPt > 127 ? 96 : rtxPt + 1;
      usedPts.add(rtxPt);
      rtxOffer = { payloadType: rtxPt, ssrc: prev?.rtxOffer?.ssrc ?? randomInt(1, 0xffffffff) };
    }
    let telephoneEvent: number | undefined;
    if (s.telephoneEvent && s.kind === 'audio') {
      // A dynamic payload type (RFC 3551 §3) no other codec of the offer uses; 32 tries cover 96-127.
      let pt = s.telephoneEvent.payloadType ?? 101;
      for (let tries = 0; tries < 32 && (usedPts.has(pt) || pt < 96 || pt > 127); tries++) pt = pt >= 96 && pt < 127 ? pt + 1 : 96;
      if (!usedPts.has(pt)) {
        telephoneEvent = pt;
        usedPts.add(pt);
      }
    }
    local.push({
      mid,
      kind: s.kind,
      codec,
      direction: s.direction,
      ssrc: sends ? outputSsrc : undefined,
      cname: context.streamName,
      msid: { stream: s.streamId ?? context.streamName, track: `${s.kind}-${mid}` },
      ...(rtxOffer ? { rtx: rtxOffer } : {}),
      ...(transportCc ? { extensions: [{ id: TWCC_OFFER_EXTENSION_ID, uri: TWCC_EXTENSION_URI }] } : {}),
      ...(telephoneEvent !== undefined ? { telephoneEvent } : {}),
    });
    states.push({
      ...(rtxOffer ? { rtxOffer, rtxAccepted: prev?.rtxAccepted ?? false } : {}),
      remote: null,
      recvPayloadType: s.direction === 'recvonly' || s.direction === 'sendrecv' ? pt : null,
      info: {
        mid,
        index,
        kind: s.kind,
        codec: codecKey(codec),
        sources: prev?.info.sources ?? [],
        output: prev?.info.output ?? null,
        outputSsrc: sends ? outputSsrc : null,
        // Offered; the answer decides (PeerConnection.applyTelephoneEvent).
        ...(telephoneEvent !== undefined ? { telephoneEvent } : {}),
      },
    });
  });
  return { sdp: writeLocalDescription({ ...context.transport, setup: 'actpass' }, local), states, data };
}
