/**
 * SRTP for plain RTP legs as Janus configures it: `srtp_suite` (32 or 80, the
 * HMAC-SHA1 tag length of AES_CM_128, RFC 4568 §6.2.1) and `srtp_crypto`
 * (base64 of the 16-byte master key followed by the 14-byte master salt,
 * RFC 3711 §8.2). Both directions share the one key, as in Janus.
 */
import type { JsonObject } from '../../core/Json.js';
import type { SdesKeys } from '../../media/Routing.js';
import { invalid, missing } from './errors.js';
import { optNumber, optString } from './requests.js';

const KEY_BYTES = 16;
const SALT_BYTES = 14;

export interface JanusSrtp {
  suite: 32 | 80;
  crypto: string;
}

/** Reads `srtp_suite`/`srtp_crypto`; null when neither is given; 429/430 when only one or a bad one is. */
export function srtpFromRequest(body: JsonObject): JanusSrtp | null {
  const suite = optNumber(body, 'srtp_suite');
  const crypto = optString(body, 'srtp_crypto');
  if (suite === undefined && crypto === undefined) return null;
  if (suite === undefined) throw missing('srtp_suite');
  if (crypto === undefined) throw missing('srtp_crypto');
  if (suite !== 32 && suite !== 80) throw invalid('srtp_suite', '32 or 80');
  const bytes = Buffer.from(crypto, 'base64');
  if (bytes.length !== KEY_BYTES + SALT_BYTES) throw invalid('srtp_crypto', `base64 of ${KEY_BYTES + SALT_BYTES} bytes`);
  return { suite, crypto };
}

export function sdesKeys(srtp: JanusSrtp): SdesKeys {
  const bytes = Buffer.from(srtp.crypto, 'base64');
  const key = bytes.subarray(0, KEY_BYTES);
  const salt = bytes.subarray(KEY_BYTES, KEY_BYTES + SALT_BYTES);
  return {
    profile: srtp.suite === 32 ? 'AES_CM_128_HMAC_SHA1_32' : 'AES_CM_128_HMAC_SHA1_80',
    localKey: Buffer.from(key),
    localSalt: Buffer.from(salt),
    remoteKey: Buffer.from(key),
    remoteSalt: Buffer.from(salt),
  };
}
