// SDP for ferry's WebRTC side (RFC 8829 JSEP, RFC 8843 BUNDLE, RFC 8839 ICE
// attributes, RFC 8842 DTLS attributes), parsed and written with
// sdp-transform. ferry is always ICE-lite (RFC 8445 §2.5) with rtcp-mux
// (RFC 5761) on one bundled transport.
import * as sdpTransform from 'sdp-transform';

export type MediaKind = 'audio' | 'video';
export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
export type DtlsSetup = 'actpass' | 'active' | 'passive';

export class SdpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SdpError';
  }
}

export interface Codec {
  payloadType: number;
  name: string;
  clockRate: number;
  channels?: number;
  fmtp?: string;
  rtcpFb: { type: string; subtype?: string }[];
}

export interface Fingerprint {
  algorithm: string;
  value: string;
}

export interface RemoteMediaSection {
  index: number;
  mid: string;
  kind: MediaKind | 'application';
  port: number;
  /** The m-line's media type, transport and format list as offered (a rejected m-line is answered with them). */
  mediaType: string;
  protocol: string;
  formats: string[];
  direction: Direction;
  codecs: Codec[];
  /** Primary SSRCs the remote sends (RTX/FEC partners in ssrc-groups excluded). */
  ssrcs: number[];
  /** RTX partner SSRC per primary SSRC (a=ssrc-group:FID). */
  rtxSsrcs: Map<number, number>;
  rids: { id: string; direction: string }[];
  extensions: { id: number; uri: string }[];
  rejected: boolean;
  /**
   * An m=application data-channel section (RFC 8841): the peer's SCTP port and the largest
   * message it takes (0: no limit, §6.1; absent attribute: 64 KiB, §6.1). Null on other m-lines.
   */
  sctp: { port: number; maxMessageSize: number } | null;
}

export interface RemoteDescription {
  type: 'offer' | 'answer';
  iceUfrag: string;
  icePwd: string;
  iceLite: boolean;
  fingerprint: Fingerprint;
  setup: DtlsSetup;
  media: RemoteMediaSection[];
  bundle: string[];
  candidates: { ip: string; port: number; protocol: string }[];
}

const DIRECTIONS = new Set<Direction>(['sendrecv', 'sendonly', 'recvonly', 'inactive']);

/** m-lines ferry takes in one remote offer unless configured otherwise (`media.max_mlines`). */
export const DEFAULT_MAX_MLINES = 32;

/** The only RTP profile WebRTC peers (Chrome, Firefox, Safari, werift) put on audio/video m-lines (RFC 8829 §5.1.2). */
const RTP_PROFILE = 'UDP/TLS/RTP/SAVPF';
/** Data-channel profiles (RFC 8841 §4; `DTLS/SCTP` from the pre-RFC drafts older browsers still send). */
const SCTP_PROFILES = new Set(['UDP/DTLS/SCTP', 'TCP/DTLS/SCTP', 'DTLS/SCTP']);
/** RFC 8841 §5: the SCTP port when a=sctp-port is absent. */
const DEFAULT_SCTP_PORT = 5000;
/** RFC 8841 §6.1: the max-message-size a peer that announces none is assumed to take. */
const DEFAULT_MAX_MESSAGE_SIZE = 65536;
/** RFC 8122 §5 hash functions ferry checks certificates with, and their digest lengths in bytes. */
const FINGERPRINT_HASHES: Record<string, number> = { 'sha-256': 32, 'sha-384': 48, 'sha-512': 64 };
/** RFC 8839 §5.4: ice-char = ALPHA / DIGIT / "+" / "/". */
const ICE_CHARS = /^[A-Za-z0-9+/]*$/;
/**
 * RFC 3551 §6 static payload types ferry has codecs for; the others below 35 are used only
 * as what RFC 3551 assigns them, which ferry never picks.
 */
const STATIC_CODECS: Record<number, { name: string; clockRate: number }> = {
  0: { name: 'PCMU', clockRate: 8000 },
  8: { name: 'PCMA', clockRate: 8000 },
  9: { name: 'G722', clockRate: 8000 },
};
/** RFC 3551 §6: payload types 0–34 are static assignments; an rtpmap cannot make them something else. */
const LAST_STATIC_PAYLOAD_TYPE = 34;

export interface ParseOptions {
  /** Most m-lines accepted in an offer (default DEFAULT_MAX_MLINES). */
  maxMLines?: number;
}

function pick<T>(mediaValue: T | undefined, sessionValue: T | undefined): T | undefined {
  return mediaValue ?? sessionValue;
}

/** A line as it is quoted in an error reason: whole, unless absurdly long. */
function quote(line: string): string {
  const clean = line.replace(/[\x00-\x1f\x7f]/g, '?');
  return clean.length > 120 ? `${clean.slice(0, 117)}...` : clean;
}

/**
 * The SDP's lines by section (0: session level, i + 1: m-section i), to name the line a
 * refusal is about: sdp-transform keeps values, not the lines they came from.
 */
class SdpLines {
  private readonly sections: string[][] = [[]];

  constructor(sdp: string) {
    for (const line of sdp.split(/\r?\n/)) {
      if (line.startsWith('m=')) this.sections.push([]);
      this.sections[this.sections.length - 1]!.push(line);
    }
  }

  /** The m-line of m-section `index`. */
  mLine(index: number): string {
    return quote(this.sections[index + 1]?.[0] ?? `m-line ${index + 1}`);
  }

  /** The first line of m-section `index` (or, failing that, of the session level) matching `re`. */
  find(index: number, re: RegExp, sessionToo = true): string {
    const line = this.sections[index + 1]?.find((l) => re.test(l)) ?? (sessionToo ? this.sections[0]!.find((l) => re.test(l)) : undefined);
    return quote(line ?? re.source);
  }
}

/** An integer in [min, max], or undefined. */
function intIn(value: unknown, min: number, max: number): number | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d{1,10}$/.test(value) ? Number(value) : NaN;
  return Number.isInteger(n) && n >= min && n <= max ? n : undefined;
}

/**
 * Parses and validates a remote description as strictly as a browser does: every refusal is
 * an SdpError naming the line it is about (or the mandatory attribute that is missing).
 */
export function parseRemoteDescription(type: 'offer' | 'answer', sdp: string, options: ParseOptions = {}): RemoteDescription {
  if (typeof sdp !== 'string' || sdp.length === 0) throw new SdpError('empty SDP');
  if (sdp.length > 256 * 1024) throw new SdpError('SDP too large');
  if (!/^v=0/.test(sdp.trimStart())) throw new SdpError('SDP does not start with v=0');
  const lines = new SdpLines(sdp);
  const maxMLines = options.maxMLines ?? DEFAULT_MAX_MLINES;
  const mLineCount = (sdp.match(/^m=/gm) ?? []).length;
  if (type === 'offer' && mLineCount > maxMLines) {
    throw new SdpError(`${lines.mLine(maxMLines)}: m-line ${maxMLines + 1} of ${mLineCount}, more than the ${maxMLines} allowed per PeerConnection`);
  }
  let parsed: sdpTransform.SessionDescription;
  try {
    parsed = sdpTransform.parse(sdp);
  } catch (err) {
    throw new SdpError(`unparsable SDP: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed.media) || parsed.media.length === 0) throw new SdpError('SDP has no m-lines');
  let iceUfrag: string | undefined;
  let icePwd: string | undefined;
  let fingerprint: Fingerprint | undefined;
  let setup: DtlsSetup | undefined;
  const media: RemoteMediaSection[] = [];
  const candidates: RemoteDescription['candidates'] = [];
  const mids = new Set<string>();
  /**
   * kind:payload type → codec over the m-lines ferry bundles (RFC 8843 §9.1: one meaning per
   * payload type). Per kind: older Chrome reuses audio payload types on video.
   */
  const bundledPayloadTypes = new Map<string, { codec: Codec; line: string }>();
  parsed.media.forEach((m, index) => {
    const kind = m.type === 'audio' || m.type === 'video' || m.type === 'application' ? m.type : undefined;
    const mid = m.mid !== undefined ? String(m.mid) : String(index);
    const rejected = m.port === 0 || kind === undefined;
    if (m.mid !== undefined) {
      if (mids.has(mid)) throw new SdpError(`${lines.find(index, /^a=mid:/, false)}: mid '${quote(mid)}' used twice (RFC 8843 §7.2)`);
      mids.add(mid);
    }
    // sdp-transform turns an all-digit value into a number: credentials are strings (RFC 8839 §5.4).
    const asText = (v: unknown): string | undefined => (v === undefined || v === null ? undefined : String(v));
    const ufrag = asText(pick(m.iceUfrag, parsed.iceUfrag));
    const pwd = asText(pick(m.icePwd, parsed.icePwd));
    const fp = pick(m.fingerprint, parsed.fingerprint);
    const st = pick(m.setup, parsed.setup);
    if (!rejected) {
      checkTransport(lines, index, kind!, m.protocol);
      if (ufrag !== undefined && (ufrag.length < 4 || ufrag.length > 256 || !ICE_CHARS.test(ufrag))) {
        throw new SdpError(`${lines.find(index, /^a=ice-ufrag:/)}: an ICE ufrag is 4 to 256 ice-chars (RFC 8839 §5.4)`);
      }
      if (pwd !== undefined && (pwd.length < 22 || pwd.length > 256 || !ICE_CHARS.test(pwd))) {
        throw new SdpError(`${lines.find(index, /^a=ice-pwd:/)}: an ICE password is 22 to 256 ice-chars (RFC 8839 §5.4)`);
      }
      if (fp) {
        const algorithm = String(fp.type).toLowerCase();
        const value = String(fp.hash).toUpperCase();
        const bytes = FINGERPRINT_HASHES[algorithm];
        if (bytes === undefined) {
          throw new SdpError(`${lines.find(index, /^a=fingerprint:/)}: fingerprint hash must be sha-256, sha-384 or sha-512`);
        }
        if (!new RegExp(`^[0-9A-F]{2}(:[0-9A-F]{2}){${bytes - 1}}$`).test(value)) {
          throw new SdpError(`${lines.find(index, /^a=fingerprint:/)}: malformed a=fingerprint (a ${algorithm} fingerprint is ${bytes} hex bytes)`);
        }
        fingerprint ??= { algorithm, value };
      }
      if (st !== undefined) {
        const allowed = type === 'offer' ? ['actpass', 'active'] : ['active', 'passive'];
        if (!allowed.includes(String(st))) {
          throw new SdpError(`${lines.find(index, /^a=setup:/)}: a=setup in an ${type} must be ${allowed.join(' or ')} (RFC 8842 §5.3)`);
        }
        setup ??= st as DtlsSetup;
      }
      iceUfrag ??= ufrag;
      icePwd ??= pwd;
    }
    const codecs = !rejected && (kind === 'audio' || kind === 'video') ? offeredCodecs(lines, index, m) : [];
    for (const c of codecs) {
      const key = `${kind}:${c.payloadType}`;
      const seen = bundledPayloadTypes.get(key);
      const line = lines.find(index, new RegExp(`^a=rtpmap:${c.payloadType}[ \\t]`), false);
      if (!seen) bundledPayloadTypes.set(key, { codec: c, line });
      else if (seen.codec.name.toLowerCase() !== c.name.toLowerCase() || seen.codec.clockRate !== c.clockRate || (seen.codec.channels ?? 1) !== (c.channels ?? 1)) {
        throw new SdpError(`${line}: payload type ${c.payloadType} is already ${seen.codec.name}/${seen.codec.clockRate} on another bundled ${kind} m-line (RFC 8843 §9.1)`);
      }
    }
    const extensions = (m.ext ?? []).map((e) => ({ id: e.value, uri: e.uri }));
    if (!rejected) {
      const byId = new Map<number, string>();
      for (const e of extensions) {
        const uri = String(e.uri).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        const line = lines.find(index, new RegExp(`^a=extmap:${e.id}(/\\S+)?[ \\t]+${uri}`), false);
        if (intIn(e.id, 1, 255) === undefined) throw new SdpError(`${line}: extension id must be 1 to 255 (RFC 8285 §5)`);
        if (byId.has(e.id) && byId.get(e.id) !== e.uri) throw new SdpError(`${line}: extension id ${e.id} is mapped twice (RFC 8285 §5)`);
        byId.set(e.id, e.uri);
      }
    }
    const secondary = new Set<number>();
    const rtxSsrcs = new Map<number, number>();
    for (const g of m.ssrcGroups ?? []) {
      const ids = g.ssrcs.split(/\s+/).map(Number);
      if ((g.semantics === 'FID' || g.semantics === 'FEC-FR') && ids.length === 2) {
        secondary.add(ids[1]!);
        if (g.semantics === 'FID') rtxSsrcs.set(ids[0]!, ids[1]!);
      }
    }
    const ssrcs = [...new Set((m.ssrcs ?? []).map((s) => Number(s.id)))].filter(
      (s) => Number.isInteger(s) && s >= 0 && s <= 0xffffffff && !secondary.has(s),
    );
    for (const c of m.candidates ?? []) {
      candidates.push({ ip: c.ip, port: c.port, protocol: c.transport.toLowerCase() });
    }
    const direction = (m.direction ?? parsed.direction ?? 'sendrecv') as Direction;
    const sctp = !rejected && kind === 'application' ? sctpParameters(lines, index, m) : null;
    media.push({
      index,
      mid,
      kind: kind ?? 'application',
      port: m.port,
      mediaType: String(m.type),
      protocol: String(m.protocol ?? ''),
      formats: String(m.payloads ?? '').trim().split(/\s+/).filter(Boolean),
      direction: DIRECTIONS.has(direction) ? direction : 'sendrecv',
      codecs,
      ssrcs,
      rtxSsrcs,
      rids: (m.rids ?? []).map((r) => ({ id: String(r.id), direction: r.direction })),
      extensions,
      rejected,
      sctp,
    });
  });
  if (!media.some((m) => !m.rejected)) throw new SdpError('SDP has no usable m-line');
  if (!iceUfrag || !icePwd) throw new SdpError('missing ICE credentials (a=ice-ufrag / a=ice-pwd)');
  if (!fingerprint) throw new SdpError('missing DTLS fingerprint (a=fingerprint)');
  const bundleGroup = (parsed.groups ?? []).find((g) => g.type === 'BUNDLE');
  const bundle = bundleGroup ? String(bundleGroup.mids).split(/\s+/).filter(Boolean) : [];
  return {
    type,
    iceUfrag,
    icePwd,
    iceLite: parsed.icelite === 'ice-lite',
    fingerprint,
    setup: setup ?? (type === 'offer' ? 'actpass' : 'active'),
    media,
    bundle,
    candidates,
  };
}

/** RFC 8829 §5.1.2 / RFC 8841 §4: the profiles WebRTC peers use; plain RTP/AVP (no DTLS-SRTP) is refused. */
function checkTransport(lines: SdpLines, index: number, kind: MediaKind | 'application', protocol: string): void {
  const ok = kind === 'application' ? SCTP_PROFILES.has(protocol) : protocol === RTP_PROFILE;
  if (!ok) {
    const want = kind === 'application' ? [...SCTP_PROFILES].join(', ') : RTP_PROFILE;
    throw new SdpError(`${lines.mLine(index)}: transport ${quote(protocol)} is not ${want} (WebRTC needs DTLS-SRTP)`);
  }
}

/**
 * An m=application section's SCTP parameters: RFC 8841's `webrtc-datachannel` format with
 * a=sctp-port and a=max-message-size, or the draft form older peers send (`DTLS/SCTP <port>`
 * with a=sctpmap). Null for any other application format (answered rejected).
 */
function sctpParameters(lines: SdpLines, index: number, m: sdpTransform.MediaDescription): { port: number; maxMessageSize: number } | null {
  const formats = String(m.payloads ?? '').trim().split(/\s+/).filter(Boolean);
  if (formats.includes('webrtc-datachannel')) {
    const port = m.sctpPort === undefined ? DEFAULT_SCTP_PORT : intIn(m.sctpPort, 1, 65535);
    if (port === undefined) throw new SdpError(`${lines.find(index, /^a=sctp-port:/, false)}: an SCTP port is 1 to 65535 (RFC 8841 §5)`);
    const size = m.maxMessageSize === undefined ? DEFAULT_MAX_MESSAGE_SIZE : intIn(m.maxMessageSize, 0, 0xffffffff);
    if (size === undefined) throw new SdpError(`${lines.find(index, /^a=max-message-size:/, false)}: max-message-size is an integer (RFC 8841 §6)`);
    return { port, maxMessageSize: size };
  }
  const legacy = m.sctpmap;
  const legacyPort = legacy ? intIn(legacy.sctpmapNumber, 1, 65535) : undefined;
  if (legacy && legacyPort !== undefined && legacy.app === 'webrtc-datachannel' && formats.includes(String(legacyPort))) {
    const size = legacy.maxMessageSize === undefined ? DEFAULT_MAX_MESSAGE_SIZE : intIn(legacy.maxMessageSize, 0, 0xffffffff) ?? DEFAULT_MAX_MESSAGE_SIZE;
    return { port: legacyPort, maxMessageSize: size };
  }
  // Another application format over SCTP: not a data channel, so the answer rejects the m-line.
  return null;
}

/**
 * The codecs an audio/video m-line offers: exactly the payload types its m-line lists
 * (RFC 4566 §5.14), each as its rtpmap says, a static one (RFC 3551 §6) only as itself;
 * a dynamic type without rtpmap means nothing ferry could answer with and is left out.
 */
function offeredCodecs(lines: SdpLines, index: number, m: sdpTransform.MediaDescription): Codec[] {
  const formats = String(m.payloads ?? '').trim().split(/\s+/).filter(Boolean);
  const codecs: Codec[] = [];
  const seen = new Set<number>();
  for (const f of formats) {
    const pt = intIn(f, 0, 127);
    if (pt === undefined) throw new SdpError(`${lines.mLine(index)}: payload type ${quote(f)} is not 0 to 127 (RFC 3550 §5.1)`);
    // RFC 5761 §4: with rtcp-mux (which ferry always uses) 64–95 would read as RTCP packet types.
    if (pt >= 64 && pt <= 95) throw new SdpError(`${lines.mLine(index)}: payload type ${pt} conflicts with RTCP under rtcp-mux (RFC 5761 §4)`);
    if (seen.has(pt)) continue;
    seen.add(pt);
    const rtpmap = (m.rtp ?? []).find((r) => r.payload === pt);
    const rtpmapLine = () => lines.find(index, new RegExp(`^a=rtpmap:${pt}[ \\t]`), false);
    if (rtpmap && intIn(rtpmap.rate, 1, 0xffffffff) === undefined) throw new SdpError(`${rtpmapLine()}: no valid clock rate (RFC 4566 §6)`);
    let name: string;
    let clockRate: number;
    let channels: number | undefined;
    if (pt <= LAST_STATIC_PAYLOAD_TYPE) {
      const known = STATIC_CODECS[pt];
      if (!known) continue;
      if (rtpmap && (rtpmap.codec.toLowerCase() !== known.name.toLowerCase() || rtpmap.rate !== known.clockRate || (rtpmap.encoding !== undefined && Number(rtpmap.encoding) !== 1))) {
        throw new SdpError(`${rtpmapLine()}: static payload type ${pt} is ${known.name}/${known.clockRate} (RFC 3551 §6)`);
      }
      ({ name, clockRate } = known);
    } else {
      if (!rtpmap) continue;
      name = rtpmap.codec;
      clockRate = rtpmap.rate!;
      channels = rtpmap.encoding ? Number(rtpmap.encoding) : undefined;
      if (channels !== undefined && intIn(channels, 1, 255) === undefined) throw new SdpError(`${rtpmapLine()}: invalid channel count`);
    }
    codecs.push({
      payloadType: pt,
      name,
      clockRate,
      channels,
      fmtp: m.fmtp?.find((x) => x.payload === pt)?.config,
      rtcpFb: (m.rtcpFb ?? [])
        .filter((x) => String(x.payload) === String(pt) || x.payload === '*')
        .map((x) => ({ type: x.type, subtype: x.subtype })),
    });
  }
  return codecs;
}

/** What ferry puts in every local description. */
export interface LocalTransport {
  iceUfrag: string;
  icePwd: string;
  fingerprint: Fingerprint;
  setup: DtlsSetup;
  /** Host candidates; `tcp`: an ICE-TCP passive candidate (RFC 6544 §4.5) on that port. */
  candidates: { ip: string; port: number; tcp?: boolean }[];
}

export interface LocalMediaSection {
  mid: string;
  kind: MediaKind | 'application';
  /** null → rejected (port 0). */
  codec: Codec | null;
  /** A rejected m-line's media type, transport and format, as the offer had them (RFC 3264 §6). */
  rejected?: { mediaType: string; protocol: string; format: string };
  direction: Direction;
  /** SSRC ferry sends on this m-line, when it sends. */
  ssrc?: number;
  cname?: string;
  msid?: { stream: string; track: string };
  /** RTP header extensions accepted (RFC 8285 a=extmap), with the offer's ids. */
  extensions?: { id: number; uri: string }[];
  /** RFC 8853 simulcast: rids ferry receives on this m-line (answered `recv`), in the offer's order. */
  recvRids?: string[];
  /** RFC 4588 retransmission payload type (`apt` = the codec's) and, when ferry sends, its SSRC (`a=ssrc-group:FID`). */
  rtx?: { payloadType: number; ssrc?: number };
  /** RFC 4733 telephone-event payload type, at the codec's clock rate (audio). */
  telephoneEvent?: number;
  /**
   * An accepted m=application section (its `codec` is null): ferry's SCTP port and the largest
   * message it takes (RFC 8841 §5, §6), written in the form the offer used (`legacy`: a=sctpmap).
   */
  sctp?: { port: number; maxMessageSize: number; legacy?: boolean };
}

function reverse(direction: Direction): Direction {
  switch (direction) {
    case 'sendonly':
      return 'recvonly';
    case 'recvonly':
      return 'sendonly';
    default:
      return direction;
  }
}

/** The direction of an answer m-line given the offer's and what ferry wants to do. */
export function answerDirection(offered: Direction, wantSend: boolean, wantRecv: boolean): Direction {
  const canSend = offered === 'sendrecv' || offered === 'recvonly';
  const canRecv = offered === 'sendrecv' || offered === 'sendonly';
  const send = canSend && wantSend;
  const recv = canRecv && wantRecv;
  return send && recv ? 'sendrecv' : send ? 'sendonly' : recv ? 'recvonly' : 'inactive';
}

export { reverse as reverseDirection };

let sessionVersion = 1;

/** Writes a local description (offer or answer) for one bundled ICE-lite transport. */
export function writeLocalDescription(transport: LocalTransport, sections: LocalMediaSection[]): string {
  const bundled = sections.filter((s) => s.codec !== null || s.sctp !== undefined).map((s) => s.mid);
  const session: sdpTransform.SessionDescription = {
    version: 0,
    origin: {
      username: 'ferry',
      sessionId: String(Date.now()),
      sessionVersion: sessionVersion++,
      netType: 'IN',
      ipVer: 4,
      address: '127.0.0.1',
    },
    name: '-',
    timing: { start: 0, stop: 0 },
    icelite: 'ice-lite',
    groups: bundled.length ? [{ type: 'BUNDLE', mids: bundled.join(' ') }] : undefined,
    msidSemantic: { semantic: 'WMS', token: '*' },
    media: [],
  };
  for (const s of sections) {
    if (s.sctp) {
      session.media.push(applicationSection(transport, s.mid, s.sctp));
      continue;
    }
    const accepted = s.codec !== null;
    const kind = s.kind;
    const m: sdpTransform.MediaDescription = {
      type: accepted ? kind : (s.rejected?.mediaType ?? kind),
      port: accepted ? (transport.candidates[0]?.port ?? 9) : 0,
      protocol: s.rejected?.protocol || (kind === 'application' ? 'UDP/DTLS/SCTP' : 'UDP/TLS/RTP/SAVPF'),
      payloads: s.codec ? String(s.codec.payloadType) : s.rejected?.format || (kind === 'application' ? 'webrtc-datachannel' : '0'),
      rtp: [],
      fmtp: [],
      connection: { version: transport.candidates[0]?.ip.includes(':') ? 6 : 4, ip: transport.candidates[0]?.ip ?? '0.0.0.0' },
      mid: s.mid,
    };
    if (accepted && s.codec) {
      const c = s.codec;
      m.rtp = [{ payload: c.payloadType, codec: c.name, rate: c.clockRate, encoding: c.channels && c.channels > 1 ? c.channels : undefined }];
      if (c.fmtp) m.fmtp = [{ payload: c.payloadType, config: c.fmtp }];
      if (c.rtcpFb.length) m.rtcpFb = c.rtcpFb.map((f) => ({ payload: c.payloadType, type: f.type, subtype: f.subtype }));
      if (s.rtx) {
        // RFC 4588 §8.6: the rtx payload type, bound to the codec's by apt.
        m.payloads = `${c.payloadType} ${s.rtx.payloadType}`;
        m.rtp.push({ payload: s.rtx.payloadType, codec: 'rtx', rate: c.clockRate });
        m.fmtp = [...(m.fmtp ?? []), { payload: s.rtx.payloadType, config: `apt=${c.payloadType}` }];
      }
      if (s.telephoneEvent !== undefined) {
        // RFC 4733 §7.1.1: the events 0-15 (DTMF) and 16 (flash) at the audio clock rate.
        m.payloads = `${m.payloads} ${s.telephoneEvent}`;
        m.rtp.push({ payload: s.telephoneEvent, codec: 'telephone-event', rate: c.clockRate });
        m.fmtp = [...(m.fmtp ?? []), { payload: s.telephoneEvent, config: '0-16' }];
      }
      m.iceUfrag = transport.iceUfrag;
      m.icePwd = transport.icePwd;
      m.fingerprint = { type: transport.fingerprint.algorithm, hash: transport.fingerprint.value };
      m.setup = transport.setup;
      m.rtcpMux = 'rtcp-mux';
      m.direction = s.direction;
      // Candidates are repeated on every bundled m-line so clients that do not bundle still connect.
      // TCP after UDP (RFC 6544 §4.2: a lower priority, so UDP wins where it works).
      m.candidates = transport.candidates.map((cand, i) => ({
        foundation: String(i + 1),
        component: 1,
        transport: cand.tcp ? 'tcp' : 'udp',
        priority: (cand.tcp ? 1518280447 : 2130706431) - i,
        ip: cand.ip,
        port: cand.port,
        type: 'host',
        ...(cand.tcp ? { tcptype: 'passive' } : {}),
      }));
      m.endOfCandidates = 'end-of-candidates';
      if (s.extensions?.length) m.ext = s.extensions.map((e) => ({ value: e.id, uri: e.uri }));
      if (s.recvRids?.length) {
        // RFC 8853 §5.3: the answerer lists the rids it accepts, in the offered order, with the reversed direction.
        m.rids = s.recvRids.map((id) => ({ id, direction: 'recv' }));
        m.simulcast = { dir1: 'recv', list1: s.recvRids.join(';') };
      }
      if (s.ssrc !== undefined && (s.direction === 'sendrecv' || s.direction === 'sendonly')) {
        const cname = s.cname ?? 'ferry';
        m.ssrcs = [{ id: s.ssrc, attribute: 'cname', value: cname }];
        if (s.msid) {
          m.ssrcs.push({ id: s.ssrc, attribute: 'msid', value: `${s.msid.stream} ${s.msid.track}` });
          m.msid = [{ id: s.msid.stream, appdata: s.msid.track }];
        }
        if (s.rtx?.ssrc !== undefined) {
          // RFC 4588 §8.7 / RFC 5576: the retransmission SSRC paired with the media SSRC.
          m.ssrcGroups = [{ semantics: 'FID', ssrcs: `${s.ssrc} ${s.rtx.ssrc}` }];
          m.ssrcs.push({ id: s.rtx.ssrc, attribute: 'cname', value: cname });
          if (s.msid) m.ssrcs.push({ id: s.rtx.ssrc, attribute: 'msid', value: `${s.msid.stream} ${s.msid.track}` });
        }
      }
    } else {
      m.direction = 'inactive';
    }
    session.media.push(m);
  }
  return sdpTransform.write(session);
}

/** An accepted data-channel m-line (RFC 8841): SCTP over the bundled DTLS transport, no RTP attributes. */
function applicationSection(transport: LocalTransport, mid: string, sctp: NonNullable<LocalMediaSection['sctp']>): sdpTransform.MediaDescription {
  const port = transport.candidates[0]?.port ?? 9;
  const m: sdpTransform.MediaDescription = {
    type: 'application',
    port,
    protocol: sctp.legacy ? 'DTLS/SCTP' : 'UDP/DTLS/SCTP',
    payloads: sctp.legacy ? String(sctp.port) : 'webrtc-datachannel',
    rtp: [],
    fmtp: [],
    connection: { version: 4, ip: transport.candidates[0]?.ip ?? '0.0.0.0' },
    mid,
    iceUfrag: transport.iceUfrag,
    icePwd: transport.icePwd,
    fingerprint: { type: transport.fingerprint.algorithm, hash: transport.fingerprint.value },
    setup: transport.setup,
    candidates: transport.candidates.map((cand, i) => ({ foundation: String(i + 1), component: 1, transport: 'udp', priority: 2130706431 - i, ip: cand.ip, port: cand.port, type: 'host' })),
    endOfCandidates: 'end-of-candidates',
  };
  if (sctp.legacy) m.sctpmap = { sctpmapNumber: sctp.port, app: 'webrtc-datachannel', maxMessageSize: sctp.maxMessageSize };
  else {
    m.sctpPort = sctp.port;
    m.maxMessageSize = sctp.maxMessageSize;
  }
  return m;
}
