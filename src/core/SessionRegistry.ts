/**
 * The only owner of sessions (and, through them, handles). Every count is
 * derived from this table; every ending funnels into `Session.end()`, which
 * removes the session here (lessons.md §3: Janus #3526/#3532).
 */
import type { Logger } from 'pino';
import { NO_EVENTS, transportId, type EventBus } from '../events/EventBus.js';
import { EventType } from '../events/JanusEvents.js';
import type { Clock, Timer } from '../time/Clock.js';
import { JanusError, JanusErrorCode } from './JanusError.js';
import type { MediaProvider } from './Media.js';
import { isQuotaExceeded, type Quotas } from './Quotas.js';
import { Session, randomJanusId, type SessionEndReason } from './Session.js';
import type { TransportSink } from './TransportSink.js';

export interface SessionRegistryOptions {
  clock: Clock;
  logger: Logger;
  media?: MediaProvider | null;
  /** Seconds; 0 disables (janus.jcfg `session_timeout`). */
  sessionTimeout: number;
  /** Seconds a session outlives its WebSocket awaiting `claim`; 0 ends it at once. */
  reclaimSessionTimeout: number;
  maxSessions: number;
  maxHandlesPerSession: number;
  maxQueuedEvents: number;
  maxPendingCandidates: number;
  /** Janus's watchdog period (janus_check_sessions runs every 2 s). */
  watchdogIntervalMs?: number;
  /** Per-client limits; sessions created with a client key are counted there. */
  quotas?: Quotas;
  onSessionEnded?: (session: Session, reason: SessionEndReason) => void;
  onEventDropped?: () => void;
  /** Where session and handle events go (Janus event handlers); default: nowhere. */
  events?: EventBus;
}

export class SessionRegistry {
  private readonly sessions = new Map<number, Session>();
  private readonly options: SessionRegistryOptions;
  private watchdog: Timer | null = null;
  private readonly events: EventBus;
  acceptingNewSessions = true;
  sessionTimeout: number;
  readonly reclaimSessionTimeout: number;

  constructor(options: SessionRegistryOptions) {
    this.options = options;
    this.sessionTimeout = options.sessionTimeout;
    this.reclaimSessionTimeout = options.reclaimSessionTimeout;
    this.events = options.events ?? NO_EVENTS;
  }

  /** Starts the expiry watchdog. */
  start(): void {
    if (this.watchdog) return;
    this.watchdog = this.options.clock.setInterval(() => this.checkTimeouts(), this.options.watchdogIntervalMs ?? 2000);
  }

  stopWatchdog(): void {
    this.watchdog?.cancel();
    this.watchdog = null;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  get handleCount(): number {
    return this.sum((s) => s.handles.size);
  }

  /** Handles with a PeerConnection, as the core knows them. */
  get mediaCount(): number {
    let n = 0;
    for (const s of this.sessions.values()) for (const h of s.handles.values()) if (h.media) n++;
    return n;
  }

  get queuedEventCount(): number {
    return this.sum((s) => s.queue.length);
  }

  get longPollWaiterCount(): number {
    return this.sum((s) => s.queue.waiterCount);
  }

  /** `count` added up over every session. */
  private sum(count: (s: Session) => number): number {
    let n = 0;
    for (const s of this.sessions.values()) n += count(s);
    return n;
  }

  ids(): number[] {
    return [...this.sessions.keys()];
  }

  all(): IterableIterator<Session> {
    return this.sessions.values();
  }

  get(id: number): Session | undefined {
    return this.sessions.get(id);
  }

  /**
   * Janus `create`: 472 when closed or full, or when the client (its quota key) is over its
   * session quota or creation rate; 468 when the requested id is taken.
   */
  create(sink: TransportSink, requestedId?: number, client?: string): Session {
    const quotas = client !== undefined ? this.options.quotas : undefined;
    if (quotas && client !== undefined) {
      try {
        quotas.admitSession(client);
      } catch (err) {
        if (isQuotaExceeded(err)) throw new JanusError(JanusErrorCode.NOT_ACCEPTING_SESSIONS, err.message);
        throw err;
      }
      let session: Session;
      try {
        session = this.createSession(sink, requestedId);
      } catch (err) {
        quotas.releaseSession(client);
        throw err;
      }
      quotas.bindSession(session.id, client);
      return session;
    }
    return this.createSession(sink, requestedId);
  }

  private createSession(sink: TransportSink, requestedId?: number): Session {
    if (!this.acceptingNewSessions) {
      throw new JanusError(JanusErrorCode.NOT_ACCEPTING_SESSIONS, 'Not accepting new sessions');
    }
    if (this.sessions.size >= this.options.maxSessions) {
      throw new JanusError(JanusErrorCode.NOT_ACCEPTING_SESSIONS, `Too many sessions (limit ${this.options.maxSessions})`);
    }
    let id: number;
    if (requestedId !== undefined) {
      if (this.sessions.has(requestedId)) throw new JanusError(JanusErrorCode.SESSION_CONFLICT, 'Session ID already in use');
      id = requestedId;
    } else {
      id = randomJanusId();
      for (let tries = 0; this.sessions.has(id) && tries < 16; tries++) id = randomJanusId();
      if (this.sessions.has(id)) throw new JanusError(JanusErrorCode.UNKNOWN, 'Could not allocate a session id');
    }
    const session = new Session({
      id,
      sink,
      clock: this.options.clock,
      logger: this.options.logger,
      media: this.options.media ?? null,
      maxHandles: this.options.maxHandlesPerSession,
      maxQueuedEvents: this.options.maxQueuedEvents,
      maxPendingCandidates: this.options.maxPendingCandidates,
      onEventDropped: () => this.options.onEventDropped?.(),
      onEnded: (s, reason) => this.removeEnded(s, reason),
      events: this.events,
    });
    this.sessions.set(id, session);
    if (this.events.wants(EventType.session)) this.events.session(id, 'created', this.transportOf(sink));
    return session;
  }

  /** Janus `claim`: the session moves to the calling transport. */
  claim(session: Session, sink: TransportSink): void {
    session.touch();
    session.bind(sink);
    if (this.events.wants(EventType.session)) this.events.session(session.id, 'claimed', this.transportOf(sink));
  }

  private transportOf(sink: TransportSink): { transport: string; id: string } {
    return { transport: sink.description, id: transportId(sink) };
  }

  /**
   * A WebSocket closed: each session bound to it is ended at once, or (with a
   * reclaim window) kept for a `claim` until the watchdog expires it.
   */
  transportGone(sink: TransportSink): void {
    for (const s of [...sink.boundSessions]) {
      const session = this.sessions.get(s.id);
      if (!session || session.sink !== sink) {
        sink.boundSessions.delete(s);
        continue;
      }
      if (this.reclaimSessionTimeout > 0) {
        session.markTransportGone();
        session.touch();
      } else {
        session.end('transport-gone');
      }
    }
  }

  /** Effective timeout of one session in ms (0 = never). */
  private timeoutMs(session: Session): number {
    const seconds = session.timeoutOverride >= 0 ? session.timeoutOverride : this.sessionTimeout;
    return seconds * 1000;
  }

  /** Watchdog sweep (janus_check_sessions): expires idle sessions and unclaimed ones. */
  checkTimeouts(): void {
    const now = this.options.clock.now();
    const reclaimMs = this.reclaimSessionTimeout * 1000;
    // Runs every 2 s for the process's life: nothing is allocated unless something expired.
    let expired: Array<[Session, SessionEndReason]> | undefined;
    for (const session of this.sessions.values()) {
      const idle = now - session.lastActivity;
      const timeout = this.timeoutMs(session);
      if (session.transportGone && idle >= reclaimMs) (expired ??= []).push([session, 'reclaim-expired']);
      else if (timeout > 0 && idle >= timeout) (expired ??= []).push([session, 'timeout']);
    }
    if (expired) for (const [session, reason] of expired) session.end(reason);
  }

  /** Ends every session (shutdown) through the same path as any other ending. */
  endAll(reason: SessionEndReason): void {
    for (const session of [...this.sessions.values()]) session.end(reason);
  }

  private removeEnded(session: Session, reason: SessionEndReason): void {
    if (this.sessions.get(session.id) === session) this.sessions.delete(session.id);
    this.options.quotas?.sessionEnded(session.id);
    this.options.onSessionEnded?.(session, reason);
    this.events.session(session.id, reason === 'timeout' || reason === 'reclaim-expired' ? 'timeout' : 'destroyed');
  }
}
