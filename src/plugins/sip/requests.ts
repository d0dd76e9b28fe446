/**
 * Validation tables for the SIP plugin's requests, in the manner of Janus's
 * JANUS_VALIDATE_JSON_OBJECT (janus_sip.c): a missing required field is 443,
 * a wrong type or range is 444; nothing changes before the whole body passed.
 * Then what the bodies mean: custom headers, digest credentials, and the
 * settings of the account a `register` opens.
 */
import type { JsonObject } from '../../core/Json.js';
import { field, isJsonObject } from '../../core/Json.js';
import { validateTable, type FieldSpec, type Table } from '../../core/RequestTable.js';
import type { DigestCredentials } from '../../sip/DigestAuth.js';
import { parseSipUri } from '../../sip/SipUri.js';
import { SipErrorCode, SipPluginError, invalid, missing } from './errors.js';
import type { AccountSettings } from './SipAccount.js';

/** Checks `body` against `table`; throws 443/444 naming the field. */
export function validate(body: JsonObject, table: Table): void {
  validateTable(body, table, { missing, invalid });
}

const HEADERS: FieldSpec = { kind: 'string-map' };
/** ferry's own field (SipCall.ts DtmfMethod); `rfc2833` is the older name of RFC 4733. */
const DTMF_METHOD: FieldSpec = { kind: 'string', oneOf: ['rfc4733', 'rfc2833', 'info'] };

/** Digest credentials (RFC 3261 §22): on `register`, and on a `call` that may be challenged; read by digestCredentials. */
const DIGEST_CREDENTIALS: Table = {
  secret: { kind: 'string' },
  ha1_secret: { kind: 'string' },
  authuser: { kind: 'string' },
};

/** `accept` and `progress` both answer an incoming INVITE, so they take the same fields. */
const ANSWER_FIELDS: Table = {
  srtp: { kind: 'string', oneOf: ['sdes_optional', 'sdes_mandatory'] },
  srtp_profile: { kind: 'string' },
  dtmf_method: DTMF_METHOD,
  headers: HEADERS,
  autoaccept_reinvites: { kind: 'boolean' },
  call_id: { kind: 'string' },
};

/** The `dtmf_method` of a call, accept or progress (validated by the tables below). */
export function dtmfMethodOf(body: JsonObject): 'rfc4733' | 'info' {
  return field(body, 'dtmf_method') === 'info' ? 'info' : 'rfc4733';
}

/** The requests the plugin knows; anything else is 442. */
export const REQUEST_TABLES: Readonly<Record<string, Table>> = {
  register: {
    type: { kind: 'string', oneOf: ['guest', 'helper'] },
    send_register: { kind: 'boolean' },
    force_udp: { kind: 'boolean' },
    force_tcp: { kind: 'boolean' },
    sips: { kind: 'boolean' },
    rfc2543_cancel: { kind: 'boolean' },
    automatic_ringing: { kind: 'boolean' },
    username: { kind: 'string' },
    ...DIGEST_CREDENTIALS,
    display_name: { kind: 'string' },
    user_agent: { kind: 'string' },
    proxy: { kind: 'string' },
    outbound_proxy: { kind: 'string' },
    headers: HEADERS,
    contact_params: { kind: 'object' },
    incoming_header_prefixes: { kind: 'string-array' },
    refresh: { kind: 'boolean' },
    master_id: { kind: 'integer', min: 1 },
    register_ttl: { kind: 'integer', min: 1 },
  },
  unregister: {},
  call: {
    uri: { kind: 'string', required: true },
    call_id: { kind: 'string' },
    headers: HEADERS,
    srtp: { kind: 'string', oneOf: ['sdes_optional', 'sdes_mandatory'] },
    srtp_profile: { kind: 'string' },
    dtmf_method: DTMF_METHOD,
    autoaccept_reinvites: { kind: 'boolean' },
    refer_id: { kind: 'integer' },
    ...DIGEST_CREDENTIALS,
  },
  accept: ANSWER_FIELDS,
  progress: ANSWER_FIELDS,
  decline: { code: { kind: 'integer', min: 100, max: 699 }, headers: HEADERS, refer_id: { kind: 'integer' }, call_id: { kind: 'string' } },
  hangup: { headers: HEADERS, call_id: { kind: 'string' } },
  hold: { direction: { kind: 'string', oneOf: ['sendonly', 'recvonly', 'inactive'] }, call_id: { kind: 'string' } },
  unhold: { call_id: { kind: 'string' } },
  update: { call_id: { kind: 'string' } },
  info: { type: { kind: 'string', required: true }, content: { kind: 'string', required: true }, headers: HEADERS, call_id: { kind: 'string' } },
  message: {
    content: { kind: 'string', required: true },
    content_type: { kind: 'string' },
    uri: { kind: 'string' },
    call_id: { kind: 'string' },
    headers: HEADERS,
  },
  dtmf_info: { digit: { kind: 'string', required: true }, duration: { kind: 'integer', min: 1, max: 5000 }, headers: HEADERS, call_id: { kind: 'string' } },
  transfer: { uri: { kind: 'string', required: true }, replace: { kind: 'string' }, call_id: { kind: 'string' } },
  keyframe: { user: { kind: 'boolean' }, peer: { kind: 'boolean' }, call_id: { kind: 'string' } },
  recording: { action: { kind: 'string', required: true, oneOf: ['start', 'stop'] } },
  subscribe: { event: { kind: 'string', required: true } },
  unsubscribe: { event: { kind: 'string', required: true } },
};

/** `headers: {"X-Foo": "bar"}` as a header list; CR/LF in a value would inject headers, so it is refused. */
export function customHeaders(body: JsonObject): Array<[string, string]> {
  const h = field(body, 'headers');
  if (!isJsonObject(h)) return [];
  const out: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(h)) {
    const text = String(value);
    if (!/^[A-Za-z0-9!%'*+._`~-]+$/.test(name) || /[\r\n]/.test(text)) throw invalid(`headers.${name}`, 'a header token with a single-line value');
    out.push([name, text]);
  }
  return out;
}

/** `secret` or `ha1_secret` with `authuser` (default `user`), or none. */
export function digestCredentials(body: JsonObject, user: string): DigestCredentials | undefined {
  const secret = field(body, 'secret') as string | undefined;
  const ha1 = field(body, 'ha1_secret') as string | undefined;
  const authuser = (field(body, 'authuser') as string | undefined) ?? user;
  return secret !== undefined ? { username: authuser, password: secret } : ha1 !== undefined ? { username: authuser, ha1 } : undefined;
}

/** A `register` body (validated by its table) as the settings of the account it opens; `guest` sends no REGISTER. */
export function accountSettings(body: JsonObject, guest: boolean, defaults: { userAgent: string; registerTtl: number }): AccountSettings {
  if (guest && field(body, 'send_register') === true) throw invalid('send_register', 'false (or absent) for a guest');
  if (field(body, 'force_udp') === true && field(body, 'force_tcp') === true) throw invalid('force_tcp', 'false when force_udp is true');
  const username = field(body, 'username');
  if (typeof username !== 'string') throw missing('username');
  const aor = parseSipUri(username);
  if (!aor || !aor.user) throw new SipPluginError(SipErrorCode.INVALID_ADDRESS, `Invalid user address ${username}`);
  const proxy = optionalUri(body, 'proxy');
  const outboundProxy = optionalUri(body, 'outbound_proxy');
  const credentials = digestCredentials(body, aor.user);
  if (!guest && field(body, 'send_register') !== false && !credentials) throw missing('secret');
  const ttl = field(body, 'register_ttl') as number | undefined;
  const headers = customHeaders(body);
  return {
    username,
    user: aor.user,
    ...(field(body, 'display_name') !== undefined ? { displayName: field(body, 'display_name') as string } : {}),
    ...(credentials ? { credentials } : {}),
    userAgent: (field(body, 'user_agent') as string | undefined) ?? defaults.userAgent,
    ...(proxy ? { registrar: proxy } : {}),
    ...(outboundProxy ? { outboundProxy } : {}),
    transport: registerTransport(body, username, proxy, outboundProxy),
    registerTtl: ttl ?? defaults.registerTtl,
    headers,
    sendRegister: !guest && field(body, 'send_register') !== false,
    incomingHeaderPrefixes: (field(body, 'incoming_header_prefixes') as string[] | undefined) ?? [],
    automaticRinging: field(body, 'automatic_ringing') !== false,
  };
}

/**
 * How REGISTER and the account's requests travel: TLS when the client asks for SIPS
 * (`sips`, Janus) or names a sips: or transport=tls URI, else TCP with `force_tcp`, else UDP.
 */
function registerTransport(body: JsonObject, username: string, proxy: string | undefined, outboundProxy: string | undefined): 'udp' | 'tcp' | 'tls' {
  const uris = [username, proxy ?? '', outboundProxy ?? ''];
  if (field(body, 'sips') === true || uris.some((u) => /^<?sips:/i.test(u) || /;transport=tls/i.test(u))) return 'tls';
  return field(body, 'force_tcp') === true ? 'tcp' : 'udp';
}

/** A SIP URI field that may be empty (absent), or written in angle brackets. */
function optionalUri(body: JsonObject, name: string): string | undefined {
  const value = field(body, name);
  if (typeof value !== 'string' || value === '') return undefined;
  if (!parseSipUri(value.replace(/^<|>$/g, ''))) throw new SipPluginError(SipErrorCode.INVALID_ADDRESS, `Invalid ${name} address ${value}`);
  return value;
}
