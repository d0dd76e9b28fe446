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
  direction: Direction;
  codecs: Codec[];
  /** Primary SSRCs the remote sends (RTX/FEC partners in ssrc-groups excluded). */
  ssrcs: number[];
  /** RTX partner SSRC per primary SSRC (a=ssrc-group:FID). */
  rtxSsrcs: Map<number, number>;
  rids: { id: string; direction: string }[];
  extensions: { id: number; uri: string }[];
  rejected: boolean;
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

function pick<T>(mediaValue: T | undefined, sessionValue: T | undefined): T | undefined {
  return mediaValue ?? sessionValue;
}

/** Parses and validates a remote description; every missing mandatory attribute is an SdpError naming it. */
export function parseRemoteDescription(type: 'offer' | 'answer', sdp: string): RemoteDescription {
  if (typeof sdp !== 'string' || sdp.length === 0) throw new SdpError('empty SDP');
  if (sdp.length > 256 * 1024) throw new SdpError('SDP too large');
  if (!/^v=0/.test(sdp.trimStart())) throw new SdpError('SDP does not start with v=0');
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
  parsed.media.forEach((m, index) => {
    const kind = m.type === 'audio' || m.type === 'video' || m.type === 'application' ? m.type : undefined;
    const mid = m.mid !== undefined ? String(m.mid) : String(index);
    const rejected = m.port === 0 || kind === undefined;
    // sdp-transform turns an all-digit value into a number: credentials are strings (RFC 8839 §5.4).
    const asText = (v: unknown): string | undefined => (v === undefined || v === null ? undefined : String(v));
    const ufrag = asText(pick(m.iceUfrag, parsed.iceUfrag));
    const pwd = asText(pick(m.icePwd, parsed.icePwd));
    const fp = pick(m.fingerprint, parsed.fingerprint);
    const st = pick(m.setup, parsed.setup);
    if (!rejected) {
      iceUfrag ??= ufrag;
      icePwd ??= pwd;
      if (fp && !fingerprint) fingerprint = { algorithm: fp.type.toLowerCase(), value: fp.hash.toUpperCase() };
      if (st && !setup) setup = st as DtlsSetup;
    }
    const codecs: Codec[] = (m.rtp ?? []).map((r) => ({
      payloadType: r.payload,
      name: r.codec,
      clockRate: r.rate ?? 0,
      channels: r.encoding ? Number(r.encoding) : undefined,
      fmtp: m.fmtp?.find((f) => f.payload === r.payload)?.config,
      rtcpFb: (m.rtcpFb ?? [])
        .filter((f) => String(f.payload) === String(r.payload) || f.payload === '*')
        .map((f) => ({ type: f.type, subtype: f.subtype })),
    }));
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
    media.push({
      index,
      mid,
      kind: kind ?? 'application',
      port: m.port,
      direction: DIRECTIONS.has(direction) ? direction : 'sendrecv',
      codecs,
      ssrcs,
      rtxSsrcs,
      rids: (m.rids ?? []).map((r) => ({ id: String(r.id), direction: r.direction })),
      extensions: (m.ext ?? []).map((e) => ({ id: e.value, uri: e.uri })),
      rejected,
    });
  });
  if (!media.some((m) => !m.rejected)) throw new SdpError('SDP has no usable m-line');
  if (!iceUfrag || !icePwd) throw new SdpError('missing ICE credentials (a=ice-ufrag / a=ice-pwd)');
  if (!fingerprint) throw new SdpError('missing DTLS fingerprint (a=fingerprint)');
  if (!/^[0-9A-F]{2}(:[0-9A-F]{2})+$/.test(fingerprint.value)) throw new SdpError('malformed a=fingerprint');
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

/** What ferry puts in every local description. */
export interface LocalTransport {
  iceUfrag: string;
  icePwd: string;
  fingerprint: Fingerprint;
  setup: DtlsSetup;
  candidates: { ip: string; port: number }[];
}

export interface LocalMediaSection {
  mid: string;
  kind: MediaKind | 'application';
  /** null → rejected (port 0). */
  codec: Codec | null;
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
  const bundled = sections.filter((s) => s.codec !== null).map((s) => s.mid);
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
    const accepted = s.codec !== null;
    const kind = s.kind;
    const m: sdpTransform.MediaDescription = {
      type: kind,
      port: accepted ? (transport.candidates[0]?.port ?? 9) : 0,
      protocol: kind === 'application' ? 'UDP/DTLS/SCTP' : 'UDP/TLS/RTP/SAVPF',
      payloads: s.codec ? String(s.codec.payloadType) : '0',
      rtp: [],
      fmtp: [],
      connection: { version: 4, ip: transport.candidates[0]?.ip ?? '0.0.0.0' },
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
      m.iceUfrag = transport.iceUfrag;
      m.icePwd = transport.icePwd;
      m.fingerprint = { type: transport.fingerprint.algorithm, hash: transport.fingerprint.value };
      m.setup = transport.setup;
      m.rtcpMux = 'rtcp-mux';
      m.direction = s.direction;
      // Candidates are repeated on every bundled m-line so clients that do not bundle still connect.
      m.candidates = transport.candidates.map((cand, i) => ({
        foundation: String(i + 1),
        component: 1,
        transport: 'udp',
        priority: 2130706431 - i,
        ip: cand.ip,
        port: cand.port,
        type: 'host',
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
