/**
 * Where a session's events go. A WebSocket connection pushes them on its
 * socket; HTTP has no push channel, so its sink declines and the session
 * queues the event for long polls. A sink also tracks the sessions bound to
 * it, so a closing connection finds exactly the sessions it must let go.
 */
import type { JsonObject } from './Json.js';

export interface TransportSink {
  /** 'internal': ferry itself drives the session (WHIP/WHEP resources), every event is pushed. */
  readonly kind: 'http' | 'websocket' | 'internal';
  /** Shown in Admin `handle_info` (`session_transport`). */
  readonly description: string;
  /** Sends an event now; false when this transport cannot push (the session queues it). */
  push(event: JsonObject): boolean;
  /** Back-references maintained by `Session.bind` (not a count: the registry is the truth). */
  readonly boundSessions: Set<{ readonly id: number }>;
}

/** The HTTP transport's sink: every event waits in the session queue for a long poll. */
export class LongPollSink implements TransportSink {
  readonly kind = 'http' as const;
  readonly description = 'janus.transport.http';
  readonly boundSessions = new Set<{ readonly id: number }>();

  push(): boolean {
    return false;
  }
}
