/**
 * SIP and SIPS URIs (RFC 3261 §19.1): `sip:user:password@host:port;params?headers`.
 *
 * Parsing never throws: malformed input gives `null`, because URIs come from
 * the network. Parameter names are case-insensitive (§19.1.4) and kept
 * lower-cased; values keep their case.
 */

export interface SipUri {
  scheme: 'sip' | 'sips';
  user?: string;
  password?: string;
  /** Host as written, IPv6 references without brackets. */
  host: string;
  port?: number;
  /** uri-parameters (§19.1.1); a flag parameter such as `lr` maps to null. */
  params: Map<string, string | null>;
  /** headers after `?` (§19.1.1), already split on `&`, values still escaped. */
  headers: Map<string, string>;
}

const MAX_URI_LENGTH = 4096;
const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.?$/;
const IPV4_RE = /^\d{1,3}(?:\.\d{1,3}){3}$/;
// §25.1 "unreserved / escaped / user-unreserved": no raw spaces, '@', '<', '>', '"'.
const USER_RE = /^(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+$/;
const PASSWORD_RE = /^(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*$/;
const PARAM_RE = /^(?:[A-Za-z0-9\-_.!~*'()[\]/:&+$]|%[0-9A-Fa-f]{2})+$/;

function validHost(host: string): boolean {
  if (host.length === 0 || host.length > 255) return false;
  if (IPV4_RE.test(host)) return host.split('.').every((o) => Number(o) <= 255);
  if (host.includes(':')) return /^[0-9A-Fa-f:.]+$/.test(host);
  return HOST_RE.test(host);
}

/** Parses `hostport` (§25.1): `host`, `host:port`, `[v6]`, `[v6]:port`. */
export function parseHostPort(text: string): { host: string; port?: number } | null {
  let host: string;
  let rest: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return null;
    host = text.slice(1, close);
    rest = text.slice(close + 1);
    if (!host.includes(':')) return null;
  } else {
    const colon = text.indexOf(':');
    host = colon < 0 ? text : text.slice(0, colon);
    rest = colon < 0 ? '' : text.slice(colon);
  }
  if (!validHost(host)) return null;
  if (rest === '') return { host };
  if (!/^:\d{1,5}$/.test(rest)) return null;
  const port = Number(rest.slice(1));
  if (port < 1 || port > 65535) return null;
  return { host, port };
}

export function formatHostPort(host: string, port?: number): string {
  const h = host.includes(':') ? `[${host}]` : host;
  return port === undefined ? h : `${h}:${port}`;
}

export function parseSipUri(text: string): SipUri | null {
  if (text.length > MAX_URI_LENGTH) return null;
  const schemeEnd = text.indexOf(':');
  if (schemeEnd < 0) return null;
  const scheme = text.slice(0, schemeEnd).toLowerCase();
  if (scheme !== 'sip' && scheme !== 'sips') return null;
  let rest = text.slice(schemeEnd + 1);

  // userinfo ends at the last '@' before any ';' or '?' that follows the host;
  // the user part may itself contain ';' and '?' (§19.1.2 telephone-subscriber),
  // so take the LAST '@'.
  const at = rest.lastIndexOf('@');
  let user: string | undefined;
  let password: string | undefined;
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = userinfo.indexOf(':');
    user = colon < 0 ? userinfo : userinfo.slice(0, colon);
    password = colon < 0 ? undefined : userinfo.slice(colon + 1);
    if (!USER_RE.test(user)) return null;
    if (password !== undefined && !PASSWORD_RE.test(password)) return null;
  }

  const q = rest.indexOf('?');
  const headersText = q < 0 ? '' : rest.slice(q + 1);
  if (q >= 0) rest = rest.slice(0, q);
  const parts = rest.split(';');
  const hp = parseHostPort(parts[0] ?? '');
  if (!hp) return null;

  const params = new Map<string, string | null>();
  for (const p of parts.slice(1)) {
    if (p === '') return null;
    const eq = p.indexOf('=');
    const name = (eq < 0 ? p : p.slice(0, eq)).toLowerCase();
    const value = eq < 0 ? null : p.slice(eq + 1);
    if (!PARAM_RE.test(name) || (value !== null && !PARAM_RE.test(value))) return null;
    params.set(name, value);
  }
  const headers = new Map<string, string>();
  if (headersText !== '') {
    for (const h of headersText.split('&')) {
      const eq = h.indexOf('=');
      if (eq <= 0) return null;
      headers.set(h.slice(0, eq), h.slice(eq + 1));
    }
  }
  const uri: SipUri = { scheme, host: hp.host, params, headers };
  if (user !== undefined) uri.user = user;
  if (password !== undefined) uri.password = password;
  if (hp.port !== undefined) uri.port = hp.port;
  return uri;
}

export function formatSipUri(uri: SipUri): string {
  let out = `${uri.scheme}:`;
  if (uri.user !== undefined) {
    out += uri.user;
    if (uri.password !== undefined) out += `:${uri.password}`;
    out += '@';
  }
  out += formatHostPort(uri.host, uri.port);
  for (const [k, v] of uri.params) out += v === null ? `;${k}` : `;${k}=${v}`;
  if (uri.headers.size > 0) out += '?' + [...uri.headers].map(([k, v]) => `${k}=${v}`).join('&');
  return out;
}

export function cloneSipUri(uri: SipUri): SipUri {
  return { ...uri, params: new Map(uri.params), headers: new Map(uri.headers) };
}

/** True when the URI is a loose router (§19.1.1 `lr`), which decides strict vs loose routing (§16.12, §12.2.1.1). */
export function isLooseRouter(uri: SipUri): boolean {
  return uri.params.has('lr');
}

/** Where to send a request addressed to this URI (§8.1.2, no DNS NAPTR/SRV: numeric or resolvable host, default ports). */
export function uriDestination(uri: SipUri): { host: string; port: number; transport: 'udp' | 'tcp' | 'tls' } {
  const t = (uri.params.get('transport') ?? '').toLowerCase();
  // RFC 3261 §19.1.2 / RFC 5630: a sips URI is reached over TLS, as is transport=tls.
  const transport = t === 'tls' || uri.scheme === 'sips' ? 'tls' : t === 'tcp' ? 'tcp' : 'udp';
  return { host: uri.host, port: uri.port ?? (transport === 'tls' ? 5061 : 5060), transport };
}
