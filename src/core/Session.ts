/**
 * A Janus session: owns its handles and its event queue, is bound to one
 * transport sink at a time, and ends only through `end(reason)`.
 */
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import type { EventBus } from '../events/EventBus.js';
import type { Clock } from '../time/Clock.js';
import { EventQueue } from './EventQueue.js';
import { Handle } from './Handle.js';
import { JanusError, JanusErrorCode } from './JanusError.js';
import type { JsonObject } from './Json.js';
import type { MediaProvider } from './Media.js';
import type { TransportSink } from './TransportSink.js';
import type { Plugin } from './Plugin.js';

export type SessionEndReason = 'destroy' | 'admin-destroy' | 'timeout' | 'transport-gone' | 'reclaim-expired' | 'shutdown';
export type SessionState = 'live' | 'ending' | 'ended';

export interface SessionOptions {
  id: number;
  sink: TransportSink;
  clock: Clock;
  logger: Logger;
  media: MediaProvider | null;
  maxHandles: number;
  maxQueuedEvents: number;
  maxPendingCandidates: number;
  onEventDropped: () => void;
  /** Where its handles' Janus events go. */
  events?: EventBus;
  /** Registry removal: called exactly once, at the end of `end()`. */
  onEnded: (session: Session, reason: SessionEndReason) => void;
}

/** Random Janus-style id in [1, 2^53): two draws because randomInt spans < 2^48. */
export function randomJanusId(): number {
  return randomInt(1, 2 ** 26) * 2 ** 27 + randomInt(0, 2 ** 27);
}

export class Session {
  readonly id: number;
  readonly created: number;
  readonly queue: EventQueue;
  readonly handles = new Map<number, Handle>();
  lastActivity: number;
  /** Per-session timeout in seconds: -1 = the global value, 0 = never, N = N seconds (Admin `set_session_timeout`). */
  timeoutOverride = -1;
  /** The WebSocket went away and the session waits for a `claim` (reclaim_session_timeout > 0). */
  transportGone = false;
  private currentSink: TransportSink;
  private currentState: SessionState = 'live';
  private readonly options: SessionOptions;
  private readonly logger: Logger;

  constructor(options: SessionOptions) {
    this.options = options;
    this.id = options.id;
    this.created = options.clock.now();
    this.lastActivity = this.created;
    this.logger = options.logger.child({ session: options.id });
    this.queue = new EventQueue(options.clock, options.maxQueuedEvents, options.onEventDropped);
    this.currentSink = options.sink;
    options.sink.boundSessions.add(this);
  }

  get state(): SessionState {
    return this.currentState;
  }

  get live(): boolean {
    return this.currentState === 'live';
  }

  get sink(): TransportSink {
    return this.currentSink;
  }

  /** Any request naming the session (including long polls) counts as activity. */
  touch(): void {
    this.lastActivity = this.options.clock.now();
  }

  /** Sends an event to the client: pushed if the transport can, queued for a poll or a claim otherwise. */
  deliver(event: JsonObject): void {
    if (this.currentState === 'ended') return;
    if (this.transportGone || !this.currentSink.push(event)) this.queue.push(event);
  }

  /** Binds the session to a transport (creation, `claim`); a pushing transport gets the backlog. */
  bind(sink: TransportSink): void {
    this.currentSink.boundSessions.delete(this);
    this.currentSink = sink;
    sink.boundSessions.add(this);
    this.transportGone = false;
    if (sink.kind === 'websocket') {
      for (const event of this.queue.drain()) sink.push(event);
    }
  }

  /** The bound transport went away; the session waits for a claim. */
  markTransportGone(): void {
    this.currentSink.boundSessions.delete(this);
    this.transportGone = true;
  }

  attach(plugin: Plugin, opaqueId: string | null, token: string | null): Handle {
    if (!this.live) throw new JanusError(JanusErrorCode.SESSION_NOT_FOUND, `No such session ${this.id}`);
    if (this.handles.size >= this.options.maxHandles) {
      throw new JanusError(JanusErrorCode.PLUGIN_ATTACH, `Too many handles in this session (limit ${this.options.maxHandles})`);
    }
    let id = randomJanusId();
    for (let tries = 0; this.handles.has(id) && tries < 16; tries++) id = randomJanusId();
    if (this.handles.has(id)) throw new JanusError(JanusErrorCode.UNKNOWN, 'Could not allocate a handle id');
    const handle = new Handle({
      id,
      owner: this,
      plugin,
      opaqueId,
      token,
      clock: this.options.clock,
      logger: this.logger,
      media: this.options.media,
      maxPendingCandidates: this.options.maxPendingCandidates,
      ...(this.options.events ? { events: this.options.events } : {}),
    });
    this.handles.set(id, handle);
    return handle;
  }

  removeHandle(handle: Handle): void {
    if (this.handles.get(handle.id) === handle) this.handles.delete(handle.id);
  }

  /**
   * The one ending of a session, whatever triggered it. Detaches every handle
   * (plugins release media and ports), tells the client `timeout` when that is
   * why, answers pending long polls, unbinds the transport and leaves the
   * registry. Idempotent: returns false if the session was already ending.
   */
  end(reason: SessionEndReason): boolean {
    if (this.currentState !== 'live') return false;
    this.currentState = 'ending';
    for (const handle of [...this.handles.values()]) handle.end(`session ${reason}`);
    let finalEvent: JsonObject | undefined;
    if (reason === 'timeout' || reason === 'reclaim-expired') {
      finalEvent = { janus: 'timeout', session_id: this.id };
      if (!this.transportGone && this.currentSink.push(finalEvent)) finalEvent = undefined;
    }
    this.queue.close(finalEvent);
    this.currentSink.boundSessions.delete(this);
    this.currentState = 'ended';
    this.logger.debug({ reason }, 'session ended');
    this.options.onEnded(this, reason);
    return true;
  }
}
