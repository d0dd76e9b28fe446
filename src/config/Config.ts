/**
 * Loads the one typed configuration: embedded defaults, then a YAML or JSON
 * file, then `FERRY_<SECTION>_<KEY>` environment variables. Every value is
 * checked against the schema; errors name the offending key.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_CONFIG, type FerryConfig } from './defaults.js';

export type { FerryConfig } from './defaults.js';
export { DEFAULT_CONFIG } from './defaults.js';

type Spec =
  | { kind: 'int'; min: number; max: number; nullable?: boolean }
  | { kind: 'bool' }
  | { kind: 'string'; nullable: boolean; pattern?: RegExp; hint?: string }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'intOrAuto'; min: number; max: number };

const PORT: Spec = { kind: 'int', min: 0, max: 65535 };
const SECONDS: Spec = { kind: 'int', min: 0, max: 86_400 * 365 };
const BIND: Spec = { kind: 'string', nullable: false, pattern: /^[0-9A-Za-z.:_-]+$/, hint: 'an IP address or host name' };
const PATH: Spec = { kind: 'string', nullable: false, pattern: /^\/[A-Za-z0-9._~\-/]*$/, hint: 'a path starting with /' };
const SECRET: Spec = { kind: 'string', nullable: true };
const BOOL: Spec = { kind: 'bool' };
const count = (min: number, max: number): Spec => ({ kind: 'int', min, max });
/** An event handler's filter: Janus's type names (events/JanusEvents.ts maps them to type bits). */
const EVENT_TYPE_NAMES = 'sessions|handles|jsep|webrtc|media|plugins|transports|core|external';
const EVENT_FILTER: Spec = {
  kind: 'string',
  nullable: false,
  pattern: new RegExp(`^\\s*(all|none|(${EVENT_TYPE_NAMES})(\\s*,\\s*(${EVENT_TYPE_NAMES}))*)\\s*$`, 'i'),
  hint: `all, none, or a comma-separated list of ${EVENT_TYPE_NAMES.split('|').join(', ')}`,
};

export const CONFIG_SCHEMA: { readonly [S in keyof FerryConfig]: { readonly [K in keyof FerryConfig[S]]: Spec } } = {
  general: {
    server_name: { kind: 'string', nullable: false },
    session_timeout: SECONDS,
    reclaim_session_timeout: SECONDS,
    candidates_timeout: SECONDS,
    accept_new_sessions: BOOL,
  },
  auth: { api_secret: SECRET, token_auth: BOOL, token_auth_secret: SECRET, admin_secret: SECRET },
  http: { enabled: BOOL, bind: BIND, port: PORT, base_path: PATH, allow_origin: SECRET, long_poll_keepalive: count(1, 3600) },
  websocket: { enabled: BOOL, bind: BIND, port: PORT },
  admin_http: { enabled: BOOL, bind: BIND, port: PORT, base_path: PATH },
  admin_websocket: { enabled: BOOL, bind: BIND, port: PORT },
  demos: { enabled: BOOL, path: PATH },
  whip: { enabled: BOOL, path: PATH, whep_path: PATH },
  metrics: { enabled: BOOL, path: PATH },
  limits: {
    body_bytes: count(1024, 64 * 1024 * 1024),
    json_depth: count(4, 1000),
    max_sessions: count(1, 10_000_000),
    max_handles_per_session: count(1, 100_000),
    max_queued_events: count(1, 1_000_000),
    max_pending_candidates: count(0, 10_000),
  },
  quotas: {
    session_create_rate: count(0, 1_000_000),
    session_create_burst: count(1, 1_000_000),
    sessions_per_client: count(0, 10_000_000),
    peer_connections_per_client: count(0, 1_000_000),
    rooms_per_client: count(0, 1_000_000),
    max_rooms: count(0, 10_000_000),
  },
  log: { level: { kind: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] } },
  videoroom: {
    rooms_file: { kind: 'string', nullable: true },
    admin_key: SECRET,
    lock_rtp_forward: BOOL,
    demo_room: BOOL,
    max_description_length: count(1, 1_000_000),
  },
  streaming: {
    mountpoints_file: { kind: 'string', nullable: true },
    admin_key: SECRET,
    demo_mountpoint: BOOL,
  },
  recordings: {
    dir: { kind: 'string', nullable: false },
    protected_folders: { kind: 'string', nullable: false },
  },
  textroom: {
    rooms_file: { kind: 'string', nullable: true },
    admin_key: SECRET,
    demo_room: BOOL,
  },
  sip: {
    bind: { kind: 'string', nullable: true, pattern: /^[0-9A-Fa-f.:]+$/, hint: 'an IP address' },
    sdp_ip: { kind: 'string', nullable: true, pattern: /^[0-9A-Fa-f.:]+$/, hint: 'an IP address' },
    register_ttl: count(30, 86_400),
    user_agent: { kind: 'string', nullable: false },
    rtp_port_min: { kind: 'int', min: 1, max: 65535, nullable: true },
    rtp_port_max: { kind: 'int', min: 1, max: 65535, nullable: true },
    keepalive_interval: count(0, 86_400),
    tls_cert: { kind: 'string', nullable: true },
    tls_key: { kind: 'string', nullable: true },
    tls_ca: { kind: 'string', nullable: true },
  },
  media: {
    workers: { kind: 'intOrAuto', min: 1, max: 64 },
    pin_threads: BOOL,
    placement: { kind: 'enum', values: ['load', 'round-robin'] },
    bandwidth_estimation: BOOL,
    bwe_start_bitrate: count(30_000, 1_000_000_000),
    bwe_max_bitrate: count(30_000, 1_000_000_000),
    bind: BIND,
    ipv6: BOOL,
    ice_tcp: BOOL,
    rtp_port_min: count(1, 65535),
    rtp_port_max: count(1, 65535),
    candidate_addresses: { kind: 'string', nullable: true, pattern: /^[0-9A-Fa-f.:, ]+$/, hint: 'comma-separated IP addresses' },
    nat_1_1_mapping: { kind: 'string', nullable: true, pattern: /^[0-9A-Fa-f.:, ]+$/, hint: 'comma-separated IP addresses' },
    keep_private_host: BOOL,
    single_port: { kind: 'string', nullable: true, pattern: /^\s*\d{1,5}(\s*,\s*\d{1,5})*\s*$/, hint: 'a port, or comma-separated ports (one per media thread)' },
    connect_timeout: count(1, 3600),
    consent_timeout: count(1, 3600),
    srtp_profiles: {
      kind: 'string',
      nullable: false,
      pattern: /^(AEAD_AES_128_GCM|AES_CM_128_HMAC_SHA1_80)(,(AEAD_AES_128_GCM|AES_CM_128_HMAC_SHA1_80))*$/,
      hint: 'a comma-separated list of AEAD_AES_128_GCM and AES_CM_128_HMAC_SHA1_80',
    },
    max_mlines: count(1, 1024),
    data_channels: BOOL,
    datachannel_max_message_size: count(1024, 64 * 1024 * 1024),
    datachannel_send_buffer: count(64 * 1024, 1024 * 1024 * 1024),
  },
  events: {
    enabled: BOOL,
    stats_period: count(0, 3600),
    http_url: { kind: 'string', nullable: true, pattern: /^https?:\/\/[^\s/?#]+[^\s]*$/, hint: 'an http:// or https:// URL' },
    http_events: EVENT_FILTER,
    http_grouping: BOOL,
    http_max_backlog: count(1, 10_000_000),
    http_username: SECRET,
    http_password: SECRET,
    mqtt_url: { kind: 'string', nullable: true, pattern: /^mqtt:\/\/[^\s/?#@]+\/?$/, hint: 'mqtt://host or mqtt://host:port' },
    mqtt_topic: { kind: 'string', nullable: false, pattern: /^[^#+\s\u0000]+$/, hint: 'an MQTT topic name (no wildcards)' },
    mqtt_events: EVENT_FILTER,
    mqtt_grouping: BOOL,
    mqtt_max_backlog: count(1, 10_000_000),
    mqtt_username: SECRET,
    mqtt_password: SECRET,
    mqtt_client_id: { kind: 'string', nullable: true, pattern: /^[0-9A-Za-z_-]{1,23}$/, hint: '1 to 23 letters, digits, - or _ (MQTT 3.1.1 §3.1.3.1)' },
  },
  cluster: {
    redis_url: { kind: 'string', nullable: true, pattern: /^rediss?:\/\/[^\s]+$/, hint: 'a redis:// or rediss:// URL' },
    node_id: { kind: 'string', nullable: true, pattern: /^[A-Za-z0-9_.-]{1,64}$/, hint: '1 to 64 letters, digits, _, . or -' },
    advertise: { kind: 'string', nullable: true, pattern: /^[0-9A-Fa-f.:]+$/, hint: 'an IP address' },
    lease_ttl: count(1, 3600),
  },
};

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Deep partial for overrides given in code (tests) or files. */
export type ConfigOverrides = { [S in keyof FerryConfig]?: Partial<FerryConfig[S]> };

function clone(config: FerryConfig): FerryConfig {
  return JSON.parse(JSON.stringify(config)) as FerryConfig;
}

function checkValue(where: string, spec: Spec, value: unknown): unknown {
  switch (spec.kind) {
    case 'int':
      if (value === null && spec.nullable) return null;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < spec.min || value > spec.max) {
        throw new ConfigError(`config: ${where} must be an integer between ${spec.min} and ${spec.max} (got ${JSON.stringify(value)})`);
      }
      return value;
    case 'intOrAuto':
      if (value === 'auto') return value;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < spec.min || value > spec.max) {
        throw new ConfigError(`config: ${where} must be "auto" or an integer between ${spec.min} and ${spec.max} (got ${JSON.stringify(value)})`);
      }
      return value;
    case 'bool':
      if (typeof value !== 'boolean') throw new ConfigError(`config: ${where} must be true or false (got ${JSON.stringify(value)})`);
      return value;
    case 'enum':
      if (typeof value !== 'string' || !spec.values.includes(value)) {
        throw new ConfigError(`config: ${where} must be one of ${spec.values.join(', ')} (got ${JSON.stringify(value)})`);
      }
      return value;
    case 'string':
      if (value === null && spec.nullable) return null;
      if (typeof value !== 'string' || (spec.pattern && !spec.pattern.test(value))) {
        throw new ConfigError(`config: ${where} must be ${spec.hint ?? 'a string'}${spec.nullable ? ' or null' : ''} (got ${JSON.stringify(value)})`);
      }
      return value;
  }
}

/** Applies a parsed document (file contents or code overrides) onto `base`, validating every key. */
export function applyConfig(base: FerryConfig, doc: unknown, source: string): FerryConfig {
  const out = clone(base);
  if (doc === null || doc === undefined) return out;
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`config (${source}): the top level must be a mapping of sections`);
  const target = out as unknown as Record<string, Record<string, unknown>>;
  const schema = CONFIG_SCHEMA as unknown as Record<string, Record<string, Spec>>;
  for (const [section, values] of Object.entries(doc as Record<string, unknown>)) {
    const sectionSchema = schema[section];
    if (!sectionSchema) throw new ConfigError(`config (${source}): unknown section "${section}" (known: ${Object.keys(schema).join(', ')})`);
    if (values === null || values === undefined) continue;
    if (typeof values !== 'object' || Array.isArray(values)) throw new ConfigError(`config (${source}): ${section} must be a mapping`);
    for (const [key, value] of Object.entries(values as Record<string, unknown>)) {
      const spec = sectionSchema[key];
      if (!spec) throw new ConfigError(`config (${source}): unknown key "${section}.${key}" (known: ${Object.keys(sectionSchema).join(', ')})`);
      const sectionTarget = target[section];
      if (sectionTarget) sectionTarget[key] = checkValue(`${section}.${key}`, spec, value);
    }
  }
  return out;
}

/** Text from the environment, typed by the schema ("null" clears a nullable string). */
function envValue(spec: Spec, text: string): unknown {
  if (spec.kind === 'intOrAuto') return /^\d+$/.test(text.trim()) ? Number(text.trim()) : text.trim();
  if (spec.kind === 'int') {
    if (spec.nullable && text === 'null') return null;
    return /^-?\d+$/.test(text.trim()) ? Number(text.trim()) : text;
  }
  if (spec.kind === 'bool') return text === 'true' || text === '1' ? true : text === 'false' || text === '0' ? false : text;
  if (spec.kind === 'string' && spec.nullable && text === 'null') return null;
  return text;
}

/**
 * `FERRY_<SECTION>_<KEY>` (e.g. FERRY_GENERAL_SESSION_TIMEOUT=30,
 * FERRY_ADMIN_HTTP_PORT=7089). Variables naming no known section are ignored;
 * a known section with an unknown key is an error.
 */
export function applyEnv(base: FerryConfig, env: NodeJS.ProcessEnv): FerryConfig {
  const schema = CONFIG_SCHEMA as unknown as Record<string, Record<string, Spec>>;
  const sections = Object.keys(schema).sort((a, b) => b.length - a.length); // admin_http before admin
  const doc: Record<string, Record<string, unknown>> = {};
  for (const [name, text] of Object.entries(env)) {
    if (!name.startsWith('FERRY_') || text === undefined) continue;
    const rest = name.slice('FERRY_'.length).toLowerCase();
    const section = sections.find((s) => rest.startsWith(`${s}_`));
    if (!section) continue;
    const key = rest.slice(section.length + 1);
    const spec = schema[section]?.[key];
    if (!spec) throw new ConfigError(`config (environment): ${name} names unknown key "${section}.${key}"`);
    (doc[section] ??= {})[key] = envValue(spec, text);
  }
  return applyConfig(base, doc, 'environment');
}

export function parseConfigText(text: string, source: string): unknown {
  try {
    return parseYaml(text); // YAML is a superset of JSON, so both formats load here.
  } catch (err) {
    throw new ConfigError(`config (${source}): cannot parse: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Defaults ← file ← environment. */
export function loadConfig(options: { file?: string; env?: NodeJS.ProcessEnv } = {}): FerryConfig {
  let config = clone(DEFAULT_CONFIG);
  if (options.file) {
    let text: string;
    try {
      text = readFileSync(options.file, 'utf8');
    } catch (err) {
      throw new ConfigError(`config: cannot read ${options.file}: ${err instanceof Error ? err.message : String(err)}`);
    }
    config = applyConfig(config, parseConfigText(text, options.file), options.file);
  }
  if (options.env) config = applyEnv(config, options.env);
  return config;
}

/** Defaults plus in-code overrides (tests, embedding), validated like a file. */
export function makeConfig(overrides: ConfigOverrides = {}): FerryConfig {
  return applyConfig(DEFAULT_CONFIG, overrides, 'overrides');
}
