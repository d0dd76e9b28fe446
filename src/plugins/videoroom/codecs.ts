/**
 * The codecs a room allows, and the restriction of a publisher's offer to them.
 * Janus negotiates one codec per m-line: the first of the room's list
 * (`audiocodec`/`videocodec`, comma-separated, in preference order) that the
 * offer contains. ferry does the same by removing every other payload type
 * from the offer before the media layer answers it (RFC 3264 §6.1: an answer
 * may only use formats the offer listed, so a narrowed offer gives a narrowed
 * answer).
 */
import * as sdpTransform from 'sdp-transform';
import type { OfferSection } from '../../core/Media.js';

export type AudioCodecName = 'opus' | 'multiopus' | 'isac32' | 'isac16' | 'pcmu' | 'pcma' | 'g722';
export type VideoCodecName = 'vp8' | 'vp9' | 'h264' | 'av1' | 'h265';

interface CodecDef {
  kind: 'audio' | 'video';
  /** Encoding name in a=rtpmap (compared case-insensitively). */
  encoding: string;
  clockRate: number;
  channels?: number;
}

export const CODECS: Readonly<Record<AudioCodecName | VideoCodecName, CodecDef>> = {
  opus: { kind: 'audio', encoding: 'opus', clockRate: 48000, channels: 2 },
  multiopus: { kind: 'audio', encoding: 'multiopus', clockRate: 48000, channels: 6 },
  isac32: { kind: 'audio', encoding: 'isac', clockRate: 32000 },
  isac16: { kind: 'audio', encoding: 'isac', clockRate: 16000 },
  pcmu: { kind: 'audio', encoding: 'pcmu', clockRate: 8000 },
  pcma: { kind: 'audio', encoding: 'pcma', clockRate: 8000 },
  // RFC 3551 §4.5.2: G.722's RTP clock is 8000 although it samples at 16 kHz.
  g722: { kind: 'audio', encoding: 'g722', clockRate: 8000 },
  vp8: { kind: 'video', encoding: 'vp8', clockRate: 90000 },
  vp9: { kind: 'video', encoding: 'vp9', clockRate: 90000 },
  h264: { kind: 'video', encoding: 'h264', clockRate: 90000 },
  av1: { kind: 'video', encoding: 'av1', clockRate: 90000 },
  h265: { kind: 'video', encoding: 'h265', clockRate: 90000 },
};

/** Janus allows up to 5 codecs per list. */
const MAX_CODECS = 5;

/** Parses `"opus,g722"` into known codec names of `kind`; null if any entry is unknown or the list is empty/too long. */
export function parseCodecList(list: string, kind: 'audio' | 'video'): string[] | null {
  const names = list.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s.length > 0);
  if (names.length === 0 || names.length > MAX_CODECS) return null;
  for (const n of names) {
    const def = (CODECS as Record<string, CodecDef | undefined>)[n];
    if (!def || def.kind !== kind) return null;
  }
  return [...new Set(names)];
}

/** The Janus codec name for a negotiated encoding name and clock rate. */
export function codecNameOf(encoding: string, clockRate: number): string {
  const enc = encoding.toLowerCase();
  if (enc === 'isac') return clockRate === 16000 ? 'isac16' : 'isac32';
  return enc;
}

function matches(def: CodecDef, encoding: string, clockRate: number | undefined): boolean {
  return def.encoding === encoding.toLowerCase() && (def.encoding !== 'isac' || clockRate === def.clockRate);
}

export interface CodecPolicy {
  audio: string[];
  video: string[];
  h264Profile?: string;
  vp9Profile?: string;
}

export interface RestrictedOffer {
  sdp: string;
  /** Codec chosen per mid (null: the m-line had no allowed codec and is rejected). Data m-lines are absent. */
  chosen: Map<string, string | null>;
  /** mids of m=application sections (data channels), with their m-line index. */
  data: { mid: string; index: number }[];
  /** Every audio/video m-line of the offer, so a rejected one is still listed (disabled) like Janus does. */
  media: { mid: string; index: number; kind: 'audio' | 'video' }[];
}

/**
 * Keeps, on each audio/video m-line, only the payload types of the first
 * allowed codec the offer has (plus their RTX, RFC 4588 `apt`); an m-line
 * with none is rejected with port 0 (RFC 3264 §6).
 */
export function restrictOffer(sdp: string, policy: CodecPolicy): RestrictedOffer {
  const parsed = sdpTransform.parse(sdp);
  const chosen = new Map<string, string | null>();
  const data: { mid: string; index: number }[] = [];
  const media: { mid: string; index: number; kind: 'audio' | 'video' }[] = [];
  (parsed.media ?? []).forEach((m, index) => {
    const mid = m.mid !== undefined ? String(m.mid) : String(index);
    if (m.type === 'application') {
      data.push({ mid, index });
      return;
    }
    if (m.type !== 'audio' && m.type !== 'video') return;
    media.push({ mid, index, kind: m.type });
    const allowed = m.type === 'audio' ? policy.audio : policy.video;
    const rtp = m.rtp ?? [];
    let pick: string | null = null;
    for (const name of allowed) {
      const def = (CODECS as Record<string, CodecDef | undefined>)[name];
      if (def && rtp.some((r) => matches(def, r.codec, r.rate) && profileOk(name, m.fmtp?.find((f) => f.payload === r.payload)?.config, policy))) {
        pick = name;
        break;
      }
    }
    chosen.set(mid, pick);
    if (pick === null) {
      m.port = 0;
      return;
    }
    const def = CODECS[pick as keyof typeof CODECS];
    const keep = new Set(
      rtp.filter((r) => matches(def, r.codec, r.rate) && profileOk(pick as string, m.fmtp?.find((f) => f.payload === r.payload)?.config, policy)).map((r) => r.payload),
    );
    for (const f of m.fmtp ?? []) {
      const apt = /(?:^|;)\s*apt=(\d+)/.exec(f.config);
      const rtx = rtp.find((r) => r.payload === f.payload && r.codec.toLowerCase() === 'rtx');
      if (apt && rtx && keep.has(Number(apt[1]))) keep.add(f.payload);
    }
    m.rtp = rtp.filter((r) => keep.has(r.payload));
    m.fmtp = (m.fmtp ?? []).filter((f) => keep.has(f.payload));
    if (m.rtcpFb) m.rtcpFb = m.rtcpFb.filter((f) => f.payload === '*' || keep.has(Number(f.payload)));
    m.payloads = [...keep].join(' ');
  });
  return { sdp: sdpTransform.write(parsed), chosen, data, media };
}

/** The mids of the m=application sections an answer accepted (non-zero port): the data streams that really exist. */
export function acceptedDataMids(answerSdp: string): Set<string> {
  const out = new Set<string>();
  sdpTransform.parse(answerSdp).media?.forEach((m, index) => {
    if (m.type === 'application' && m.port !== 0) out.add(m.mid !== undefined ? String(m.mid) : String(index));
  });
  return out;
}

/** When the room pins an H.264 or VP9 profile, only payload types with that profile are acceptable. */
function profileOk(name: string, fmtp: string | undefined, policy: CodecPolicy): boolean {
  if (name === 'h264' && policy.h264Profile) return (fmtp ?? '').toLowerCase().includes(`profile-level-id=${policy.h264Profile.toLowerCase()}`);
  if (name === 'vp9' && policy.vp9Profile) return (fmtp ?? '').includes(`profile-id=${policy.vp9Profile}`);
  return true;
}

/** Video feedback ferry offers subscribers: NACK (RFC 4585), PLI and FIR (RFC 5104) so keyframes can be requested. */
const VIDEO_FEEDBACK = [{ type: 'nack' }, { type: 'nack', subtype: 'pli' }, { type: 'ccm', subtype: 'fir' }];

/** The codec description of an offered section for a codec known only by name (remote publishers). */
export function offerCodecFor(name: string, options: { h264Profile?: string; vp9Profile?: string; stereo?: boolean; fec?: boolean; dtx?: boolean } = {}): OfferSection['codec'] | null {
  const def = (CODECS as Record<string, CodecDef | undefined>)[name];
  if (!def) return null;
  const encoding = def.encoding === 'opus' ? 'opus' : def.encoding.toUpperCase();
  const codec: OfferSection['codec'] = { name: encoding, clockRate: def.clockRate };
  if (def.channels) codec.channels = def.channels;
  if (name === 'opus') {
    const params = ['minptime=10', `useinbandfec=${options.fec === false ? 0 : 1}`];
    if (options.stereo) params.push('stereo=1', 'sprop-stereo=1');
    if (options.dtx) params.push('usedtx=1');
    codec.fmtp = params.join(';');
  } else if (name === 'h264') {
    codec.fmtp = `level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=${options.h264Profile ?? '42e01f'}`;
  } else if (name === 'vp9' && options.vp9Profile) {
    codec.fmtp = `profile-id=${options.vp9Profile}`;
  }
  if (def.kind === 'video') codec.rtcpFb = VIDEO_FEEDBACK.map((f) => ({ ...f }));
  return codec;
}

export function codecKind(name: string): 'audio' | 'video' | null {
  return (CODECS as Record<string, CodecDef | undefined>)[name]?.kind ?? null;
}
