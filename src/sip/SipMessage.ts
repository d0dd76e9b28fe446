/**
 * The SIP message model (RFC 3261 §7) and the structured header values a UA
 * needs: name-addr / addr-spec (§20.10, §25.1), Via (§20.42, RFC 3581 rport),
 * CSeq (§20.16) and comma-separated multi-value headers (§7.3.1).
 *
 * Header values are kept as text, in order, with their canonical long names;
 * structured views are parsed on demand and return `null` on malformed input
 * instead of throwing, because every header value comes from the network.
 */
import { randomBytes } from 'node:crypto';

/** Compact forms (§7.3.3, plus RFC 3515 r, RFC 4028 x, RFC 3891/3892 b/y/o/u...). */
const COMPACT: Record<string, string> = {
  i: 'Call-ID', m: 'Contact', e: 'Content-Encoding', l: 'Content-Length', c: 'Content-Type',
  f: 'From', s: 'Subject', k: 'Supported', t: 'To', v: 'Via', o: 'Event', u: 'Allow-Events',
  r: 'Refer-To', b: 'Referred-By', x: 'Session-Expires', a: 'Accept-Contact', j: 'Reject-Contact',
  d: 'Request-Disposition', y: 'Identity', n: 'Identity-Info',
};

/** Canonical spelling for headers whose capitalisation is not plain Title-Case. */
const CANONICAL: Record<string, string> = {
  'call-id': 'Call-ID', cseq: 'CSeq', 'www-authenticate': 'WWW-Authenticate', 'mime-version': 'MIME-Version',
  'rack': 'RAck', 'rseq': 'RSeq', 'p-asserted-identity': 'P-Asserted-Identity',
};

/**
 * Headers whose grammar is a comma-separated list (§7.3.1), so one line may
 * carry several values. Auth headers are NOT here: their params contain commas.
 */
const LIST_HEADERS = new Set([
  'via', 'route', 'record-route', 'contact', 'allow', 'supported', 'require', 'proxy-require', 'unsupported',
  'accept', 'accept-encoding', 'accept-language', 'content-encoding', 'allow-events', 'service-route', 'path',
  'warning', 'in-reply-to', 'call-info', 'alert-info', 'error-info', 'reason', 'content-language',
]);

export function canonicalHeaderName(name: string): string {
  const lower = name.toLowerCase();
  const compact = COMPACT[lower];
  if (compact) return compact;
  const special = CANONICAL[lower];
  if (special) return special;
  return lower.replace(/(^|-)([a-z])/g, (_m, dash: string, ch: string) => dash + ch.toUpperCase());
}

export function isListHeader(name: string): boolean {
  return LIST_HEADERS.has(canonicalHeaderName(name).toLowerCase());
}

export interface SipHeader {
  /** Canonical long name (compact forms expanded). */
  name: string;
  value: string;
}

/** Ordered header list; lookups are case-insensitive and compact-form aware. */
export class SipHeaders {
  readonly list: SipHeader[] = [];

  constructor(init?: Iterable<readonly [string, string]>) {
    if (init) for (const [n, v] of init) this.add(n, v);
  }

  add(name: string, value: string): this {
    this.list.push({ name: canonicalHeaderName(name), value });
    return this;
  }

  /** Inserts before every existing header of the same name (used for Via, §8.1.1.7). */
  prepend(name: string, value: string): this {
    const canon = canonicalHeaderName(name);
    const first = this.list.findIndex((h) => h.name === canon);
    this.list.splice(first < 0 ? this.list.length : first, 0, { name: canon, value });
    return this;
  }

  set(name: string, value: string): this {
    this.remove(name);
    return this.add(name, value);
  }

  remove(name: string): this {
    const canon = canonicalHeaderName(name);
    for (let i = this.list.length - 1; i >= 0; i--) if (this.list[i]?.name === canon) this.list.splice(i, 1);
    return this;
  }

  has(name: string): boolean {
    const canon = canonicalHeaderName(name);
    return this.list.some((h) => h.name === canon);
  }

  /** First line's raw value. */
  get(name: string): string | undefined {
    const canon = canonicalHeaderName(name);
    return this.list.find((h) => h.name === canon)?.value;
  }

  /** Every value in order; list headers are split on commas outside quotes and <> (§7.3.1). */
  getAll(name: string): string[] {
    const canon = canonicalHeaderName(name);
    const split = isListHeader(canon);
    const out: string[] = [];
    for (const h of this.list) {
      if (h.name !== canon) continue;
      if (split) out.push(...splitList(h.value));
      else out.push(h.value);
    }
    return out;
  }

  clone(): SipHeaders {
    const c = new SipHeaders();
    for (const h of this.list) c.list.push({ ...h });
    return c;
  }
}

export interface SipRequest {
  kind: 'request';
  method: string;
  /** Request-URI as text: it may be sip:, sips: or another scheme (tel:, urn:). */
  uri: string;
  headers: SipHeaders;
  body: Buffer;
}

export interface SipResponse {
  kind: 'response';
  status: number;
  reason: string;
  headers: SipHeaders;
  body: Buffer;
}

export type SipMessage = SipRequest | SipResponse;

export function makeRequest(method: string, uri: string, headers: SipHeaders = new SipHeaders(), body: Buffer | string = Buffer.alloc(0)): SipRequest {
  return { kind: 'request', method, uri, headers, body: typeof body === 'string' ? Buffer.from(body, 'utf8') : body };
}

/** Splits a list header value on commas that are outside quoted strings and <...> (§7.3.1). */
export function splitList(value: string): string[] {
  const out: string[] = [];
  let depthAngle = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (quoted) {
      if (ch === '\\') i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === '<') depthAngle++;
    else if (ch === '>') depthAngle = Math.max(0, depthAngle - 1);
    else if (ch === ',' && depthAngle === 0) {
      const part = value.slice(start, i).trim();
      if (part !== '') out.push(part);
      start = i + 1;
    }
  }
  const last = value.slice(start).trim();
  if (last !== '') out.push(last);
  return out;
}

const TOKEN_RE = /^[A-Za-z0-9\-.!%*_+`'~]+$/;

export function isToken(s: string): boolean {
  return TOKEN_RE.test(s);
}

/**
 * Parses `;name=value;flag` generic-params (§25.1) into a map (names lower-cased).
 * Quoted values keep their quotes so that formatting round-trips.
 */
export function parseParams(text: string): Map<string, string | null> | null {
  const params = new Map<string, string | null>();
  let i = 0;
  const n = text.length;
  while (i < n) {
    while (i < n && (text[i] === ' ' || text[i] === '\t')) i++;
    if (i >= n) break;
    if (text[i] !== ';') return null;
    i++;
    while (i < n && (text[i] === ' ' || text[i] === '\t')) i++;
    let j = i;
    while (j < n && text[j] !== '=' && text[j] !== ';' && text[j] !== ' ' && text[j] !== '\t') j++;
    const name = text.slice(i, j).toLowerCase();
    if (!isToken(name)) return null;
    while (j < n && (text[j] === ' ' || text[j] === '\t')) j++;
    if (text[j] !== '=') {
      params.set(name, null);
      i = j;
      continue;
    }
    j++;
    while (j < n && (text[j] === ' ' || text[j] === '\t')) j++;
    let value: string;
    if (text[j] === '"') {
      let k = j + 1;
      while (k < n && text[k] !== '"') k += text[k] === '\\' ? 2 : 1;
      if (k >= n) return null;
      value = text.slice(j, k + 1);
      i = k + 1;
    } else {
      let k = j;
      while (k < n && text[k] !== ';' && text[k] !== ' ' && text[k] !== '\t') k++;
      value = text.slice(j, k);
      // host values (received=, maddr=) may be IPv6 references: allow [ ] :
      if (value === '' || !/^[A-Za-z0-9\-.!%*_+`'~:[\]]+$/.test(value)) return null;
      i = k;
    }
    params.set(name, value);
  }
  return params;
}

export function formatParams(params: Map<string, string | null>): string {
  let out = '';
  for (const [k, v] of params) out += v === null ? `;${k}` : `;${k}=${v}`;
  return out;
}

/** name-addr or addr-spec with header params (From, To, Contact, Route, Record-Route, Service-Route...). */
export interface NameAddr {
  display?: string;
  /** The URI text (not parsed here: it may be any scheme). */
  uri: string;
  params: Map<string, string | null>;
}

/**
 * §20.10: in the addr-spec form (no angle brackets) everything after the first
 * ';' is a header parameter, never a URI parameter.
 */
export function parseNameAddr(text: string): NameAddr | null {
  const s = text.trim();
  if (s === '') return null;
  let display: string | undefined;
  let rest: string;
  if (s === '*') return { uri: '*', params: new Map() }; // Contact: * (§10.2.2)
  const lt = findUnquoted(s, '<');
  if (lt >= 0) {
    const d = s.slice(0, lt).trim();
    if (d.startsWith('"')) {
      if (!d.endsWith('"') || d.length < 2) return null;
      display = d.slice(1, -1).replace(/\\(.)/g, '$1');
    } else if (d !== '') {
      if (!/^[A-Za-z0-9\-.!%*_+`'~ \t]+$/.test(d)) return null;
      display = d;
    }
    const gt = s.indexOf('>', lt);
    if (gt < 0) return null;
    const uri = s.slice(lt + 1, gt).trim();
    if (!/^[A-Za-z][A-Za-z0-9+\-.]*:\S+$/.test(uri)) return null;
    rest = s.slice(gt + 1);
    const params = parseParams(rest);
    if (!params) return null;
    const na: NameAddr = { uri, params };
    if (display !== undefined) na.display = display;
    return na;
  }
  const semi = s.indexOf(';');
  const uri = (semi < 0 ? s : s.slice(0, semi)).trim();
  if (!/^[A-Za-z][A-Za-z0-9+\-.]*:[^\s,?<>"]+$/.test(uri)) return null;
  const params = parseParams(semi < 0 ? '' : s.slice(semi));
  if (!params) return null;
  return { uri, params };
}

export function formatNameAddr(na: NameAddr): string {
  const display = na.display !== undefined && na.display !== '' ? `"${na.display.replace(/(["\\])/g, '\\$1')}" ` : '';
  if (na.uri === '*') return '*';
  return `${display}<${na.uri}>${formatParams(na.params)}`;
}

function findUnquoted(s: string, ch: string): number {
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === ch) return i;
  }
  return -1;
}

/** One Via value (§20.42): `SIP/2.0/UDP host:port;branch=...;rport;received=...`. */
export interface Via {
  protocol: string; // "SIP/2.0"
  transport: string; // upper-case: UDP, TCP, TLS, WS...
  host: string;
  port?: number;
  params: Map<string, string | null>;
}

export function parseVia(text: string): Via | null {
  const m = /^\s*([A-Za-z0-9\-.!%*_+`'~]+)\s*\/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s*\/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+([^;\s]+)\s*(.*)$/s.exec(text);
  if (!m) return null;
  const [, name = '', version = '', transport = '', sentBy = '', rest = ''] = m;
  let host: string;
  let port: number | undefined;
  const bracket = sentBy.startsWith('[');
  const colon = bracket ? sentBy.indexOf(']:') + 1 : sentBy.lastIndexOf(':');
  if (colon > 0) {
    host = sentBy.slice(0, colon);
    const p = sentBy.slice(colon + 1);
    if (!/^\d{1,5}$/.test(p)) return null;
    port = Number(p);
    if (port < 1 || port > 65535) return null;
  } else host = sentBy;
  if (host.startsWith('[')) host = host.slice(1, -1);
  if (!/^[A-Za-z0-9\-.:]+$/.test(host)) return null;
  const params = parseParams(rest);
  if (!params) return null;
  const rport = params.get('rport');
  if (rport !== undefined && rport !== null && !/^\d{1,5}$/.test(rport)) return null;
  const via: Via = { protocol: `${name.toUpperCase()}/${version}`, transport: transport.toUpperCase(), host, params };
  if (port !== undefined) via.port = port;
  return via;
}

export function formatVia(via: Via): string {
  const host = via.host.includes(':') ? `[${via.host}]` : via.host;
  return `${via.protocol}/${via.transport} ${host}${via.port === undefined ? '' : `:${via.port}`}${formatParams(via.params)}`;
}

export interface CSeq {
  seq: number;
  method: string;
}

/** §20.16: sequence number is a 32-bit unsigned integer below 2**31. */
export function parseCSeq(text: string): CSeq | null {
  const m = /^\s*(\d{1,10})\s+([A-Za-z0-9\-.!%*_+`'~]+)\s*$/.exec(text);
  if (!m) return null;
  const seq = Number(m[1]);
  if (seq >= 2 ** 31) return null;
  return { seq, method: m[2] ?? '' };
}

/** RFC 3261 §8.1.1.7: branches start with the magic cookie so they are unique across space and time. */
export const BRANCH_COOKIE = 'z9hG4bK';

export function newBranch(): string {
  return BRANCH_COOKIE + randomBytes(10).toString('hex');
}

/** §19.3: tags need 32 bits of randomness. */
export function newTag(): string {
  return randomBytes(6).toString('hex');
}

export function newCallId(host: string): string {
  return `${randomBytes(12).toString('hex')}@${host}`;
}

/** Typed accessors used by the UA; all return null when the header is missing or malformed. */
export function topVia(msg: SipMessage): Via | null {
  const v = msg.headers.getAll('Via')[0];
  return v === undefined ? null : parseVia(v);
}

export function headerNameAddr(msg: SipMessage, name: 'From' | 'To' | 'Contact'): NameAddr | null {
  const v = msg.headers.getAll(name)[0];
  return v === undefined ? null : parseNameAddr(v);
}

export function cseqOf(msg: SipMessage): CSeq | null {
  const v = msg.headers.get('CSeq');
  return v === undefined ? null : parseCSeq(v);
}

export function tagOf(na: NameAddr | null): string | undefined {
  const t = na?.params.get('tag');
  return t === null ? undefined : t;
}

/** Default reason phrases for the codes a UA generates (§21). */
export const REASON_PHRASES: Record<number, string> = {
  100: 'Trying', 180: 'Ringing', 181: 'Call Is Being Forwarded', 182: 'Queued', 183: 'Session Progress',
  200: 'OK', 202: 'Accepted', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 406: 'Not Acceptable', 407: 'Proxy Authentication Required', 408: 'Request Timeout',
  415: 'Unsupported Media Type', 420: 'Bad Extension', 480: 'Temporarily Unavailable',
  481: 'Call/Transaction Does Not Exist', 482: 'Loop Detected', 483: 'Too Many Hops', 486: 'Busy Here',
  487: 'Request Terminated', 488: 'Not Acceptable Here', 491: 'Request Pending', 500: 'Server Internal Error',
  501: 'Not Implemented', 503: 'Service Unavailable', 504: 'Server Time-out', 513: 'Message Too Large',
  600: 'Busy Everywhere', 603: 'Decline', 604: 'Does Not Exist Anywhere', 606: 'Not Acceptable',
};

export function reasonPhrase(code: number): string {
  return REASON_PHRASES[code] ?? (code < 200 ? 'Provisional' : code < 300 ? 'OK' : 'Error');
}

/**
 * Builds a response to `req` per §8.2.6.2: Via, From, Call-ID and CSeq copied,
 * To copied with a tag added when the request had none and one is given.
 */
export function makeResponse(req: SipRequest, status: number, reason?: string, toTag?: string): SipResponse {
  const headers = new SipHeaders();
  for (const h of req.headers.list) {
    if (h.name === 'Via' || h.name === 'From' || h.name === 'Call-ID' || h.name === 'CSeq') headers.add(h.name, h.value);
    else if (h.name === 'To') {
      let value = h.value;
      if (toTag !== undefined && status !== 100) {
        const na = parseNameAddr(value);
        if (na && !na.params.has('tag')) {
          na.params.set('tag', toTag);
          value = formatNameAddr(na);
        }
      }
      headers.add('To', value);
    }
  }
  // §8.2.6.1: a 100 Trying copies the Timestamp header.
  if (status === 100) {
    const ts = req.headers.get('Timestamp');
    if (ts !== undefined) headers.add('Timestamp', ts);
  }
  return { kind: 'response', status, reason: reason ?? reasonPhrase(status), headers, body: Buffer.alloc(0) };
}
