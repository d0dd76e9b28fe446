// RTP packets and SRTP sessions built with werift-rtp: an implementation independent of ferry's.
import { randomBytes } from 'node:crypto';
import {
  ProtectionProfileAeadAes128Gcm,
  ProtectionProfileAes128CmHmacSha1_80,
  RtpHeader,
  RtpPacket,
  SrtpSession,
} from 'werift-rtp';

import type { SrtpProfileName } from '../../src/media/MediaEngine.js';

/** The profiles werift-rtp implements, by ferry's names. */
export const WERIFT_PROFILES: Record<string, { werift: 1 | 7; keyLen: number; saltLen: number }> = {
  AES_CM_128_HMAC_SHA1_80: { werift: ProtectionProfileAes128CmHmacSha1_80, keyLen: 16, saltLen: 14 },
  AEAD_AES_128_GCM: { werift: ProtectionProfileAeadAes128Gcm, keyLen: 16, saltLen: 12 },
};

export interface KeyPair {
  key: Buffer;
  salt: Buffer;
}

export function newKeys(profile: SrtpProfileName): KeyPair {
  const p = WERIFT_PROFILES[profile];
  if (!p) throw new Error(`werift-rtp does not implement ${profile}`);
  return { key: randomBytes(p.keyLen), salt: randomBytes(p.saltLen) };
}

/** A werift SRTP session that sends with `local` and receives with `remote`. */
export function weriftSession(profile: SrtpProfileName, local: KeyPair, remote: KeyPair): SrtpSession {
  const p = WERIFT_PROFILES[profile];
  if (!p) throw new Error(`werift-rtp does not implement ${profile}`);
  return new SrtpSession({
    profile: p.werift,
    keys: {
      localMasterKey: local.key,
      localMasterSalt: local.salt,
      remoteMasterKey: remote.key,
      remoteMasterSalt: remote.salt,
    },
  });
}

export function rtpPacket(opts: { ssrc: number; seq: number; ts: number; pt?: number; payload: Buffer; marker?: boolean }): RtpPacket {
  const header = new RtpHeader({
    payloadType: opts.pt ?? 96,
    sequenceNumber: opts.seq & 0xffff,
    timestamp: opts.ts >>> 0,
    ssrc: opts.ssrc >>> 0,
    marker: opts.marker ?? false,
  });
  return new RtpPacket(header, opts.payload);
}

export function payloadFor(i: number, size = 160): Buffer {
  const b = Buffer.alloc(size);
  for (let k = 0; k < size; k++) b[k] = (i * 31 + k) & 0xff;
  b.writeUInt32BE(i >>> 0, 0);
  return b;
}

export { RtpPacket };

/** How far sequence number `b` is after `a` (RFC 3550 16-bit serial arithmetic). */
export function seqDelta(a: number, b: number): number {
  return (b - a + 0x10000) & 0xffff;
}

/** Whether timestamp `b` does not go back from `a` (32-bit serial arithmetic). */
export function tsForward(a: number, b: number): boolean {
  return ((b - a) >>> 0) < 0x80000000;
}
