/**
 * SDES-SRTP keying for the SIP side of the bridge (RFC 4568): the `a=crypto`
 * attribute read and written, the keys ferry makes, and offer/answer.
 *
 * Each direction has its own master key (§6.1): ferry's line carries the key
 * ferry sends with, the peer's line the key it sends with. The engine's RTP
 * leg runs the SRTP with both (SdesKeys).
 *
 * Janus's `srtp` request field: `sdes_optional` offers RTP/AVP with crypto
 * lines (the peer may answer without, then the media is plain RTP);
 * `sdes_mandatory` offers RTP/SAVP and a plain answer ends the call. An
 * incoming offer with crypto lines is answered with SRTP whenever ferry
 * supports one of its suites; RTP/SAVP without one ferry supports is refused.
 */
import { randomBytes } from 'node:crypto';
import type { SdesKeys } from '../../media/Routing.js';

export type SrtpPolicy = 'sdes_optional' | 'sdes_mandatory';

/** Suites the engine runs, with their key and salt lengths (RFC 4568 §6.2, RFC 7714 §12). */
export const SDES_SUITES: Readonly<Record<string, { keyLen: number; saltLen: number }>> = {
  AES_CM_128_HMAC_SHA1_80: { keyLen: 16, saltLen: 14 },
  AES_CM_128_HMAC_SHA1_32: { keyLen: 16, saltLen: 14 },
  AEAD_AES_128_GCM: { keyLen: 16, saltLen: 12 },
  AEAD_AES_256_GCM: { keyLen: 32, saltLen: 12 },
};

/** What ferry offers when the client names no `srtp_profile` (Janus offers the _80 suite). */
export const DEFAULT_OFFER_SUITES = ['AES_CM_128_HMAC_SHA1_80', 'AES_CM_128_HMAC_SHA1_32'] as const;

/** One usable `a=crypto` line (a key ferry can run). */
export interface CryptoLine {
  tag: number;
  suite: string;
  key: Buffer;
  salt: Buffer;
}

/** A crypto line as the peer wrote it (sdp-transform's fields). */
export interface RawCrypto {
  id: number;
  suite: string;
  config: string;
  sessionConfig?: string;
}

export class SdesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SdesError';
  }
}

/**
 * Reads one peer crypto line (§9.1 grammar): `inline:<base64 key||salt>`, an
 * optional lifetime, and no MKI and no session parameters (ferry supports
 * neither, so per §6.3 such a line is not acceptable). Throws SdesError
 * saying why a line cannot be used.
 */
export function readCrypto(raw: RawCrypto): CryptoLine {
  const suite = String(raw.suite ?? '');
  const params = SDES_SUITES[suite];
  if (!params) throw new SdesError(`unsupported crypto suite ${suite || '(none)'}`);
  if (!Number.isInteger(raw.id) || raw.id < 0 || raw.id > 999_999_999) throw new SdesError('crypto tag is not a number of up to 9 digits');
  if (raw.sessionConfig && raw.sessionConfig.trim() !== '') throw new SdesError(`unsupported session parameters ${raw.sessionConfig.trim()}`);
  // §6.1: several keys (with MKIs) may be listed; ferry takes one key without MKI.
  const keyParams = String(raw.config ?? '').split(';');
  if (keyParams.length !== 1) throw new SdesError('more than one key (MKI) is not supported');
  const m = /^inline:([A-Za-z0-9+/]+={0,2})(\|[^|]+)?(\|[^|]+)?$/.exec(keyParams[0]!.trim());
  if (!m) throw new SdesError('key parameters are not inline:<base64>[|lifetime]');
  const material = Buffer.from(m[1]!, 'base64');
  if (material.length !== params.keyLen + params.saltLen) {
    throw new SdesError(`${suite} needs ${params.keyLen + params.saltLen} bytes of key and salt, got ${material.length}`);
  }
  for (const extra of [m[2], m[3]]) {
    if (!extra) continue;
    // A second field is either a lifetime (2^n or a number) or an MKI (value:length).
    if (extra.includes(':')) throw new SdesError('an MKI is not supported');
    if (!/^\|(2\^\d{1,2}|\d{1,20})$/.test(extra)) throw new SdesError(`bad key lifetime ${extra.slice(1)}`);
  }
  return { tag: raw.id, suite, key: material.subarray(0, params.keyLen), salt: material.subarray(params.keyLen) };
}

/** A fresh key for `suite` under `tag` (ferry's own direction). */
export function newCrypto(tag: number, suite: string): CryptoLine {
  const params = SDES_SUITES[suite];
  if (!params) throw new SdesError(`unsupported crypto suite ${suite}`);
  return { tag, suite, key: randomBytes(params.keyLen), salt: randomBytes(params.saltLen) };
}

/** The `a=crypto` value for a line (§9.1): `<tag> <suite> inline:<base64>`. */
export function formatCrypto(line: CryptoLine): string {
  return `${line.tag} ${line.suite} inline:${Buffer.concat([line.key, line.salt]).toString('base64')}`;
}

/** The keys the engine runs for a line: ferry sends with `local`, receives with `remote`. */
export function sdesKeys(local: CryptoLine, remote: CryptoLine): SdesKeys {
  return { profile: local.suite, localKey: local.key, localSalt: local.salt, remoteKey: remote.key, remoteSalt: remote.salt };
}

/**
 * Answerer (§7.1.2): the first offered line ferry can run, in the offerer's
 * order; `reasons` says why the others were skipped (for the error the client
 * or the log gets when none is usable).
 */
export function chooseOffered(offered: readonly RawCrypto[]): { chosen: CryptoLine | null; reasons: string[] } {
  const reasons: string[] = [];
  for (const raw of offered) {
    try {
      return { chosen: readCrypto(raw), reasons };
    } catch (err) {
      reasons.push(`a=crypto:${raw.id}: ${(err as Error).message}`);
    }
  }
  return { chosen: null, reasons };
}

/**
 * Offerer (§7.1.3, §7.5): the answer's line must carry one of the offered tags
 * with the same suite. Returns the peer's key, or throws SdesError.
 */
export function matchAnswer(offered: readonly CryptoLine[], answered: readonly RawCrypto[]): { local: CryptoLine; remote: CryptoLine } {
  if (answered.length !== 1) throw new SdesError(`the answer must carry exactly one crypto line, it has ${answered.length}`);
  const remote = readCrypto(answered[0]!);
  const local = offered.find((o) => o.tag === remote.tag);
  if (!local) throw new SdesError(`the answer's crypto tag ${remote.tag} was not offered`);
  if (local.suite !== remote.suite) throw new SdesError(`the answer's tag ${remote.tag} names ${remote.suite}, offered ${local.suite}`);
  return { local, remote };
}

/** The suites ferry offers: the client's `srtp_profile` alone, or the defaults. */
export function offerSuites(profile: string | undefined): string[] {
  if (profile === undefined) return [...DEFAULT_OFFER_SUITES];
  if (!SDES_SUITES[profile]) throw new SdesError(`unsupported srtp_profile ${profile} (supported: ${Object.keys(SDES_SUITES).join(', ')})`);
  return [profile];
}
