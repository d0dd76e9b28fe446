/**
 * The SIP side of the bridge's SDP (RFC 4566, RFC 3264 offer/answer, RFC 3551
 * RTP/AVP, RFC 3711 RTP/SAVP with SDES keys, RFC 4568, in Sdes.ts): RTP or
 * SRTP on one leased port per m-line, no ICE, no DTLS.
 *
 * ferry relays packets without transcoding, so a codec can cross the bridge
 * only when both sides use it. These functions pick, per m-line, the codecs
 * both a WebRTC peer and a plain-RTP peer can carry (BRIDGEABLE), keep the
 * payload types of whichever side offered, and write the SIP-side SDP.
 *
 * RFC 4733 telephone-event rides beside an audio codec at its clock rate
 * (`telephoneEventFor`); the bridge renumbers or drops event packets per
 * side (MediaBridge.ts), since each side negotiates them on its own.
 */
import * as sdpTransform from 'sdp-transform';
import type { RawCrypto } from './Sdes.js';

export type BridgeKind = 'audio' | 'video';
export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

export interface SipCodec {
  payloadType: number;
  name: string;
  clockRate: number;
  channels?: number;
  fmtp?: string;
}

export interface SipMediaLine {
  index: number;
  kind: BridgeKind | 'other';
  /** The m-line's media type as written (for rejecting unknown ones with the same type). */
  type: string;
  port: number;
  proto: string;
  /** c= of the m-line, else of the session; null when neither is usable. */
  address: string | null;
  codecs: SipCodec[];
  /** First payload type in the m= line (for a rejected answer line). */
  firstFormat: string;
  direction: Direction;
  ssrcs: number[];
  /** RFC 4568 `a=crypto` lines as written (read with Sdes.ts). */
  crypto: RawCrypto[];
}

export interface SipSdp {
  sessionVersion: number;
  media: SipMediaLine[];
}

export class SdpBridgeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SdpBridgeError';
  }
}

/** Codecs that cross the bridge unchanged, in ferry's preference order. */
export const BRIDGEABLE: Readonly<Record<BridgeKind, readonly string[]>> = {
  audio: ['opus', 'pcmu', 'pcma', 'g722'],
  video: ['vp8', 'h264', 'vp9'],
};

const DIRECTIONS = new Set<Direction>(['sendrecv', 'sendonly', 'recvonly', 'inactive']);

export function isBridgeable(kind: BridgeKind, name: string): boolean {
  return BRIDGEABLE[kind].includes(name.toLowerCase());
}

/** Parses a SIP peer's SDP; SdpBridgeError when it is not an SDP at all. */
export function parseSipSdp(sdp: string): SipSdp {
  if (typeof sdp !== 'string' || !/^v=0/.test(sdp.trimStart())) throw new SdpBridgeError('SDP does not start with v=0');
  if (sdp.length > 64 * 1024) throw new SdpBridgeError('SDP too large');
  let parsed: sdpTransform.SessionDescription;
  try {
    parsed = sdpTransform.parse(sdp);
  } catch (err) {
    throw new SdpBridgeError(`unparsable SDP: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed.media) || parsed.media.length === 0) throw new SdpBridgeError('SDP has no m-lines');
  const sessionAddress = usableAddress(parsed.connection?.ip);
  const media: SipMediaLine[] = parsed.media.map((m, index) => {
    const kind: SipMediaLine['kind'] = m.type === 'audio' || m.type === 'video' ? m.type : 'other';
    // RFC 3551 §6: static payload types need no rtpmap.
    const formats = String(m.payloads ?? '').split(/\s+/).filter(Boolean);
    const codecs: SipCodec[] = [];
    for (const f of formats) {
      const pt = Number(f);
      if (!Number.isInteger(pt) || pt < 0 || pt > 127) continue;
      const map = m.rtp?.find((r) => r.payload === pt);
      const fmtp = m.fmtp?.find((x) => x.payload === pt)?.config;
      if (map) codecs.push({ payloadType: pt, name: map.codec, clockRate: map.rate ?? 0, channels: map.encoding ? Number(map.encoding) : undefined, fmtp });
      else if (STATIC_TYPES[pt]) codecs.push({ payloadType: pt, ...STATIC_TYPES[pt]! });
    }
    const direction = (m.direction ?? parsed.direction ?? 'sendrecv') as Direction;
    return {
      index,
      kind,
      type: m.type,
      port: m.port,
      proto: m.protocol,
      address: usableAddress(m.connection?.ip) ?? sessionAddress,
      codecs,
      firstFormat: formats[0] ?? '0',
      direction: DIRECTIONS.has(direction) ? direction : 'sendrecv',
      ssrcs: [...new Set((m.ssrcs ?? []).map((s) => Number(s.id)))].filter((s) => Number.isInteger(s) && s >= 0 && s <= 0xffffffff),
      crypto: (m.crypto ?? []).slice(0, MAX_CRYPTO_LINES).map((c) => ({ id: Number(c.id), suite: String(c.suite ?? ''), config: String(c.config ?? ''), ...(c.sessionConfig ? { sessionConfig: String(c.sessionConfig) } : {}) })),
    };
  });
  const version = Number(parsed.origin?.sessionVersion ?? 0);
  return { sessionVersion: Number.isFinite(version) ? version : 0, media };
}

/** More crypto lines than this on one m-line are not read (a peer offers a handful). */
const MAX_CRYPTO_LINES = 16;

/** RFC 3551 Table 4/5 static payload types ferry can bridge. */
const STATIC_TYPES: Readonly<Record<number, Omit<SipCodec, 'payloadType'>>> = {
  0: { name: 'PCMU', clockRate: 8000 },
  8: { name: 'PCMA', clockRate: 8000 },
  9: { name: 'G722', clockRate: 8000 },
};

/** An address media may be sent to; 0.0.0.0 (RFC 3264 §8.4 old-style hold) is none. */
function usableAddress(ip: string | undefined): string | null {
  if (!ip || ip === '0.0.0.0' || ip === '::') return null;
  return ip;
}

export type RtpProfile = 'RTP/AVP' | 'RTP/SAVP';

/** The RTP profile of a SIP m-line ferry can bridge: RTP/AVP, or RTP/SAVP keyed by SDES; null for any other. */
export function rtpProfile(line: SipMediaLine): RtpProfile | null {
  const proto = line.proto.toUpperCase();
  return proto === 'RTP/AVP' || proto === 'RTP/SAVP' ? proto : null;
}

/** RFC 4733 §7.1.1: the telephone-event format of an m-line at `clockRate`, if it has one. */
export function telephoneEventFor(codecs: readonly SipCodec[], clockRate: number): SipCodec | undefined {
  return codecs.find((c) => c.name.toLowerCase() === 'telephone-event' && c.clockRate === clockRate);
}

/** The codec ferry uses for a SIP offer's m-line: the peer's most preferred bridgeable one. */
export function firstBridgeable(line: SipMediaLine): SipCodec | null {
  if (line.kind === 'other' || line.port === 0 || !rtpProfile(line)) return null;
  return line.codecs.find((c) => isBridgeable(line.kind as BridgeKind, c.name)) ?? null;
}

/** One m-line of a WebRTC offer with the codecs that can cross the bridge (the WebRTC side's payload types). */
export interface WebRtcLine {
  mid: string;
  kind: BridgeKind;
  direction: Direction;
  codecs: SipCodec[];
  /** RFC 4733 telephone-event formats at the clock rates of `codecs`. */
  events: SipCodec[];
}

/** The bridgeable m-lines of a WebRTC offer (rejected, data and codec-less lines are left out). */
export function bridgeableWebRtcLines(sdp: string): WebRtcLine[] {
  const parsed = sdpTransform.parse(sdp);
  const lines: WebRtcLine[] = [];
  (parsed.media ?? []).forEach((m, index) => {
    if ((m.type !== 'audio' && m.type !== 'video') || m.port === 0) return;
    const kind = m.type;
    const codecs: SipCodec[] = (m.rtp ?? [])
      .filter((r) => isBridgeable(kind, r.codec))
      .map((r) => ({
        payloadType: r.payload,
        name: r.codec,
        clockRate: r.rate ?? 0,
        channels: r.encoding ? Number(r.encoding) : undefined,
        fmtp: m.fmtp?.find((f) => f.payload === r.payload)?.config,
      }));
    if (codecs.length === 0) return;
    const events: SipCodec[] = kind !== 'audio' ? [] : (m.rtp ?? [])
      .filter((r) => r.codec.toLowerCase() === 'telephone-event' && codecs.some((c) => c.clockRate === r.rate))
      .map((r) => ({ payloadType: r.payload, name: r.codec, clockRate: r.rate ?? 0, fmtp: m.fmtp?.find((f) => f.payload === r.payload)?.config }));
    // The browser's order is kept: the SIP peer chooses, as with Janus passing the browser's offer on.
    const direction = (m.direction ?? 'sendrecv') as Direction;
    lines.push({ mid: m.mid !== undefined ? String(m.mid) : String(index), kind, direction: DIRECTIONS.has(direction) ? direction : 'sendrecv', codecs, events });
  });
  return lines;
}

/** Mids of a WebRTC answer's m-lines that were rejected (port 0). */
export function rejectedMids(sdp: string): Set<string> {
  const parsed = sdpTransform.parse(sdp);
  const out = new Set<string>();
  (parsed.media ?? []).forEach((m, index) => {
    if (m.port === 0 || m.direction === 'inactive') out.add(m.mid !== undefined ? String(m.mid) : String(index));
  });
  return out;
}

/** RFC 3264 §6.1: the answerer's direction for an offered one (ferry relays both ways). */
export function answerDirection(offered: Direction): Direction {
  switch (offered) {
    case 'sendonly': return 'recvonly';
    case 'recvonly': return 'sendonly';
    case 'inactive': return 'inactive';
    default: return 'sendrecv';
  }
}

export type SipSdpLine =
  | { kind: BridgeKind; port: number; codecs: SipCodec[]; direction: Direction; profile?: RtpProfile; crypto?: string[] }
  | { rejected: true; type: string; proto: string; format: string };

/**
 * Writes ferry's SIP-side SDP: one m-line per entry (RTP/AVP unless said,
 * with its `a=crypto` values), rejected entries as port 0 (RFC 3264 §6).
 */
export function writeSipSdp(options: { sessionId: number; version: number; address: string; lines: SipSdpLine[] }): string {
  const ipv = options.address.includes(':') ? 'IP6' : 'IP4';
  const out = [
    'v=0',
    `o=ferry ${options.sessionId} ${options.version} IN ${ipv} ${options.address}`,
    's=ferry',
    `c=IN ${ipv} ${options.address}`,
    't=0 0',
  ];
  for (const line of options.lines) {
    if ('rejected' in line) {
      out.push(`m=${line.type} 0 ${line.proto} ${line.format}`);
      continue;
    }
    out.push(`m=${line.kind} ${line.port} ${line.profile ?? 'RTP/AVP'} ${line.codecs.map((c) => c.payloadType).join(' ')}`);
    for (const c of line.codecs) {
      out.push(`a=rtpmap:${c.payloadType} ${c.name}/${c.clockRate}${c.channels && c.channels > 1 ? `/${c.channels}` : ''}`);
      if (c.fmtp) out.push(`a=fmtp:${c.payloadType} ${c.fmtp}`);
    }
    for (const crypto of line.crypto ?? []) out.push(`a=crypto:${crypto}`);
    out.push(`a=${line.direction}`);
  }
  return `${out.join('\r\n')}\r\n`;
}
