/**
 * Per-client quotas: what one client (one remote address, or one token when
 * token auth is on) may hold at once — sessions, PeerConnections (each one a
 * UDP port lease) and VideoRoom rooms — and how fast it may create sessions
 * (a token bucket). Everything here is counted on admission and released by
 * the one ending of the thing counted, so the counts return to zero when the
 * client's sessions, PeerConnections and rooms are gone.
 *
 * A refusal is a `QuotaExceededError` naming the limit; callers turn it into
 * the Janus error their API uses (see README "Quotas").
 */
import type { Clock } from '../time/Clock.js';

export type QuotaLimit = 'session_create_rate' | 'sessions_per_client' | 'peer_connections_per_client' | 'rooms_per_client' | 'max_rooms';

export interface QuotaConfig {
  /** Sessions a client may create per second, on average (0 = no rate limit). */
  session_create_rate: number;
  /** Sessions a client may create back to back before the rate applies. */
  session_create_burst: number;
  /** Concurrent sessions per client (0 = no limit). */
  sessions_per_client: number;
  /** Concurrent PeerConnections (port leases) per client (0 = no limit). */
  peer_connections_per_client: number;
  /** Concurrent VideoRoom rooms a client created and that still exist (0 = no limit). */
  rooms_per_client: number;
}

export class QuotaExceededError extends Error {
  constructor(
    readonly limit: QuotaLimit,
    readonly max: number,
    what: string,
  ) {
    super(`Quota exceeded: ${what} (${limit} = ${max})`);
    this.name = 'QuotaExceededError';
  }
}

export function isQuotaExceeded(err: unknown): err is QuotaExceededError {
  return err instanceof QuotaExceededError;
}

/**
 * The key a request is counted under. With token auth on and a valid token,
 * the token (one credential = one client, wherever it connects from); else the
 * remote address: IPv4-mapped IPv6 as IPv4, other IPv6 by its /64 (one host
 * usually holds a whole /64, so per-address keys would be free to mint).
 */
export function clientKey(address: string | undefined, validToken: string | null): string {
  if (validToken !== null) return `token:${validToken}`;
  if (!address) return 'address:unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return `address:${mapped[1]}`;
  if (address.includes(':')) return `address:${ipv6Prefix64(address)}/64`;
  return `address:${address}`;
}

function ipv6Prefix64(address: string): string {
  const bare = address.split('%')[0] ?? address;
  const [head = '', tail] = bare.split('::');
  const headParts = head === '' ? [] : head.split(':');
  const tailParts = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? headParts : [...headParts, ...Array<string>(Math.max(0, 8 - headParts.length - tailParts.length)).fill('0'), ...tailParts];
  return groups
    .slice(0, 4)
    .map((g) => (Number.parseInt(g, 16) || 0).toString(16))
    .join(':');
}

interface ClientCounts {
  sessions: number;
  peerConnections: number;
  rooms: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Sweep full buckets after this many admissions, so one-shot clients do not accumulate. */
const SWEEP_EVERY = 1024;

export type QuotaStatus = {
  /** Clients holding at least one session, PeerConnection or room. */
  clients: number;
  sessions: number;
  peer_connections: number;
  rooms: number;
  /** Clients whose session-creation bucket is not full (they created sessions recently). */
  rate_buckets: number;
};

export class Quotas {
  private readonly clients = new Map<string, ClientCounts>();
  private readonly buckets = new Map<string, Bucket>();
  private readonly sessionKeys = new Map<number, string>();
  private admissions = 0;
  /** Called once per refusal (metrics). */
  onRefusal: ((limit: QuotaLimit) => void) | null = null;

  constructor(
    readonly config: QuotaConfig,
    private readonly clock: Pick<Clock, 'now'>,
  ) {}

  /**
   * Admits a session creation by `key`: the rate, then the concurrent count.
   * Throws QuotaExceededError; on success the caller must `bindSession` the
   * new session's id (or `releaseSession(key)` if creation failed later).
   */
  admitSession(key: string): void {
    const c = this.config;
    this.checkLimit(key, 'sessions', 'sessions_per_client', 'too many sessions from this client');
    if (c.session_create_rate > 0) {
      const now = this.clock.now();
      const burst = Math.max(1, c.session_create_burst);
      const bucket = this.buckets.get(key) ?? { tokens: burst, at: now };
      bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * c.session_create_rate);
      bucket.at = now;
      if (bucket.tokens < 1) {
        this.buckets.set(key, bucket);
        this.refuse('session_create_rate', c.session_create_rate, 'sessions created too fast by this client');
      }
      bucket.tokens -= 1;
      this.buckets.set(key, bucket);
      if (++this.admissions % SWEEP_EVERY === 0) this.sweepBuckets(now);
    }
    this.counts(key).sessions++;
  }

  /** The session admitted for `key` now exists under `sessionId`. */
  bindSession(sessionId: number, key: string): void {
    this.sessionKeys.set(sessionId, key);
  }

  /** Undoes an admission whose session was never created. */
  releaseSession(key: string): void {
    this.decrement(key, 'sessions');
  }

  /** The session ended (every ending path goes through the registry). */
  sessionEnded(sessionId: number): void {
    const key = this.sessionKeys.get(sessionId);
    if (key === undefined) return;
    this.sessionKeys.delete(sessionId);
    this.decrement(key, 'sessions');
  }

  /** The client a session was created by, if it was admitted here. */
  keyOfSession(sessionId: number): string | undefined {
    return this.sessionKeys.get(sessionId);
  }

  /**
   * Admits one PeerConnection for the session's client, before any port is
   * leased. Returns its release (idempotent). Sessions not admitted here
   * (embedded use) are not limited.
   */
  acquirePeerConnection(sessionId: number): () => void {
    return this.acquire(sessionId, 'peerConnections', 'peer_connections_per_client', 'too many PeerConnections (media ports) for this client');
  }

  /** Admits one room created through the session's client; the release goes with the room's destruction. */
  acquireRoom(sessionId: number): () => void {
    return this.acquire(sessionId, 'rooms', 'rooms_per_client', 'too many rooms created by this client');
  }

  /** A refusal decided elsewhere (the VideoRoom's global max_rooms), counted with the others. */
  refuse(limit: QuotaLimit, max: number, what: string): never {
    this.onRefusal?.(limit);
    throw new QuotaExceededError(limit, max, what);
  }

  status(): QuotaStatus {
    let sessions = 0;
    let peerConnections = 0;
    let rooms = 0;
    for (const c of this.clients.values()) {
      sessions += c.sessions;
      peerConnections += c.peerConnections;
      rooms += c.rooms;
    }
    this.sweepBuckets(this.clock.now());
    return { clients: this.clients.size, sessions, peer_connections: peerConnections, rooms, rate_buckets: this.buckets.size };
  }

  /** One more `what` for the session's client, within `limit`; returns its release (idempotent). */
  private acquire(sessionId: number, what: 'peerConnections' | 'rooms', limit: 'peer_connections_per_client' | 'rooms_per_client', refusal: string): () => void {
    const key = this.sessionKeys.get(sessionId);
    if (key === undefined) return noop;
    this.checkLimit(key, what, limit, refusal);
    this.counts(key)[what]++;
    return this.releaser(key, what);
  }

  /** Refuses when `key` already holds as many `what` as `limit` allows (a limit of 0: none). */
  private checkLimit(key: string, what: keyof ClientCounts, limit: 'sessions_per_client' | 'peer_connections_per_client' | 'rooms_per_client', refusal: string): void {
    const max = this.config[limit];
    if (max > 0 && (this.clients.get(key)?.[what] ?? 0) >= max) this.refuse(limit, max, refusal);
  }

  private counts(key: string): ClientCounts {
    let c = this.clients.get(key);
    if (!c) {
      c = { sessions: 0, peerConnections: 0, rooms: 0 };
      this.clients.set(key, c);
    }
    return c;
  }

  private releaser(key: string, what: keyof ClientCounts): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.decrement(key, what);
    };
  }

  private decrement(key: string, what: keyof ClientCounts): void {
    const c = this.clients.get(key);
    if (!c) return;
    c[what] = Math.max(0, c[what] - 1);
    if (c.sessions === 0 && c.peerConnections === 0 && c.rooms === 0) this.clients.delete(key);
  }

  /** Drops buckets that have refilled: a full bucket is the same as none. */
  private sweepBuckets(now: number): void {
    const rate = this.config.session_create_rate;
    const burst = Math.max(1, this.config.session_create_burst);
    for (const [key, b] of this.buckets) {
      if (rate <= 0 || b.tokens + ((now - b.at) / 1000) * rate >= burst) this.buckets.delete(key);
    }
  }
}

function noop(): void {}
