/**
 * HTTP Digest authentication as SIP uses it (RFC 3261 §22.4, RFC 2617 §3.2,
 * RFC 8760 for SHA-256): answers a 401 (WWW-Authenticate → Authorization) or
 * a 407 (Proxy-Authenticate → Proxy-Authorization) challenge, with
 * qop=auth (cnonce, nc) when the server offers it.
 *
 * Credentials are a password or a precomputed HA1 = MD5(user:realm:password)
 * (Janus's `ha1_secret`), which only works with MD5 and the realm it was
 * computed for.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { SipResponse } from './SipMessage.js';

export interface DigestChallenge {
  realm: string;
  nonce: string;
  opaque?: string;
  /** Upper-cased: MD5, MD5-SESS, SHA-256, SHA-256-SESS. */
  algorithm: string;
  /** Offered qop values, lower-cased (empty: RFC 2069 compatibility, no qop). */
  qop: string[];
  /** RFC 2617 §3.2.1: the nonce expired but the credentials were fine; retrying is allowed. */
  stale: boolean;
}

export interface DigestCredentials {
  username: string;
  password?: string;
  /** Precomputed MD5(username:realm:password), hex. */
  ha1?: string;
}

/** Parses the auth-param list of a `Digest ...` challenge; null when not Digest or malformed. */
export function parseDigestChallenge(value: string): DigestChallenge | null {
  const m = /^\s*Digest\s+(.*)$/is.exec(value);
  if (!m) return null;
  const params = parseAuthParams(m[1] ?? '');
  if (!params) return null;
  const realm = params.get('realm');
  const nonce = params.get('nonce');
  if (realm === undefined || nonce === undefined) return null;
  const challenge: DigestChallenge = {
    realm,
    nonce,
    algorithm: (params.get('algorithm') ?? 'MD5').toUpperCase(),
    qop: (params.get('qop') ?? '').split(',').map((q) => q.trim().toLowerCase()).filter((q) => q !== ''),
    stale: (params.get('stale') ?? '').toLowerCase() === 'true',
  };
  const opaque = params.get('opaque');
  if (opaque !== undefined) challenge.opaque = opaque;
  return challenge;
}

/** `name=token` / `name="quoted"` pairs separated by commas (RFC 2617 §1.2); quotes removed. */
export function parseAuthParams(text: string): Map<string, string> | null {
  const out = new Map<string, string>();
  let i = 0;
  const n = text.length;
  for (let guard = 0; guard < 1000 && i < n; guard++) {
    while (i < n && /[\s,]/.test(text[i] ?? '')) i++;
    if (i >= n) break;
    const eq = text.indexOf('=', i);
    if (eq < 0) return null;
    const name = text.slice(i, eq).trim().toLowerCase();
    if (!/^[a-z0-9\-_.]+$/.test(name)) return null;
    i = eq + 1;
    while (i < n && (text[i] === ' ' || text[i] === '\t')) i++;
    let value = '';
    if (text[i] === '"') {
      i++;
      while (i < n && text[i] !== '"') {
        if (text[i] === '\\' && i + 1 < n) i++;
        value += text[i];
        i++;
      }
      if (i >= n) return null;
      i++;
    } else {
      const start = i;
      while (i < n && text[i] !== ',') i++;
      value = text.slice(start, i).trim();
    }
    out.set(name, value);
  }
  return out;
}

function hashFor(algorithm: string): ((s: string) => string) | null {
  const base = algorithm.replace(/-SESS$/, '');
  if (base === 'MD5') return (s) => createHash('md5').update(s, 'utf8').digest('hex');
  if (base === 'SHA-256') return (s) => createHash('sha256').update(s, 'utf8').digest('hex');
  return null;
}

export interface DigestInput {
  method: string;
  /** digest-uri: the Request-URI of the request being authorised (RFC 3261 §22.4). */
  uri: string;
  cnonce: string;
  /** Nonce count, formatted as 8 hex digits. */
  nc: number;
}

/** Computes the `response` value (RFC 2617 §3.2.2.1); null when the algorithm or credentials cannot be used. */
export function digestResponse(challenge: DigestChallenge, creds: DigestCredentials, input: DigestInput): string | null {
  const H = hashFor(challenge.algorithm);
  if (!H) return null;
  let ha1: string;
  if (creds.password !== undefined) ha1 = H(`${creds.username}:${challenge.realm}:${creds.password}`);
  else if (creds.ha1 !== undefined && challenge.algorithm.startsWith('MD5')) ha1 = creds.ha1.toLowerCase();
  else return null;
  if (challenge.algorithm.endsWith('-SESS')) ha1 = H(`${ha1}:${challenge.nonce}:${input.cnonce}`);
  const ha2 = H(`${input.method}:${input.uri}`);
  const nc = formatNc(input.nc);
  return challenge.qop.includes('auth')
    ? H(`${ha1}:${challenge.nonce}:${nc}:${input.cnonce}:auth:${ha2}`)
    : H(`${ha1}:${challenge.nonce}:${ha2}`);
}

const formatNc = (nc: number) => nc.toString(16).padStart(8, '0');
const quote = (s: string) => `"${s.replace(/(["\\])/g, '\\$1')}"`;

/** Builds the credentials header value (RFC 3261 §22.4 / RFC 2617 §3.2.2). */
export function buildAuthorization(challenge: DigestChallenge, creds: DigestCredentials, input: DigestInput): string | null {
  const response = digestResponse(challenge, creds, input);
  if (response === null) return null;
  const parts = [
    `username=${quote(creds.username)}`, `realm=${quote(challenge.realm)}`, `nonce=${quote(challenge.nonce)}`,
    `uri=${quote(input.uri)}`, `response=${quote(response)}`, `algorithm=${challenge.algorithm}`,
  ];
  if (challenge.opaque !== undefined) parts.push(`opaque=${quote(challenge.opaque)}`);
  if (challenge.qop.includes('auth')) parts.push('qop=auth', `nc=${formatNc(input.nc)}`, `cnonce=${quote(input.cnonce)}`);
  return `Digest ${parts.join(', ')}`;
}

export function newCnonce(): string {
  return randomBytes(8).toString('hex');
}

export interface ChallengeAnswer {
  /** Authorization (401) or Proxy-Authorization (407). */
  header: 'Authorization' | 'Proxy-Authorization';
  value: string;
  realm: string;
  nonce: string;
  stale: boolean;
}

/**
 * Answers every usable Digest challenge of a 401/407 (§22.3: a 407 may carry
 * one challenge per proxy). Returns [] when none can be answered (unknown
 * algorithm, no credentials), so the caller reports the failure.
 */
export function answerChallenges(res: SipResponse, creds: DigestCredentials, method: string, uri: string): ChallengeAnswer[] {
  const header = res.status === 407 ? 'Proxy-Authorization' : 'Authorization';
  const source = res.status === 407 ? 'Proxy-Authenticate' : 'WWW-Authenticate';
  const out: ChallengeAnswer[] = [];
  for (const v of res.headers.getAll(source)) {
    const ch = parseDigestChallenge(v);
    if (!ch) continue;
    const value = buildAuthorization(ch, creds, { method, uri, cnonce: newCnonce(), nc: 1 });
    if (value !== null) out.push({ header, value, realm: ch.realm, nonce: ch.nonce, stale: ch.stale });
  }
  return out;
}
