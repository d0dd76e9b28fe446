// Where the core, the WebRTC layer and the gateway put Janus-shaped events, and where each
// configured handler (HTTP, MQTT) takes the types its filter selects. With no handler, or
// none that wants a type, an emit is one bit test: callers that would build a costly body
// ask `wants(type)` first.
import {
  EventType,
  MediaSubtype,
  WebRtcSubtype,
  mediaStatsBody,
  webrtcEventBody,
  type EventBody,
  type JanusEvent,
  type MediaLineStats,
  type WebRtcTransportEvent,
} from './JanusEvents.js';

/** What a handler reports in Admin `ferry_status` and /metrics (a type, not an interface, so it is JSON). */
export type EventHandlerStatus = {
  /** `http` or `mqtt`. */
  handler: string;
  /** Where it delivers (URL without credentials, or broker and topic). */
  target: string;
  /** The type names its filter selects. */
  events: string[];
  grouping: boolean;
  /** The handler can deliver now (the last attempt succeeded, or the broker connection is up). */
  connected: boolean;
  /** Events waiting (including those being delivered), and the most it keeps. */
  backlog: number;
  max_backlog: number;
  /** Events delivered, events dropped because the backlog was full, and failed delivery attempts. */
  sent: number;
  dropped: number;
  failed_attempts: number;
  last_error: string | null;
};

export interface EventHandler {
  /** Bits of the types it wants (JanusEvents.EventType). */
  readonly mask: number;
  /** Takes one event; must return at once (delivery happens later) and never throw. */
  accept(event: JanusEvent): void;
  start(): void;
  status(): EventHandlerStatus;
  /** Delivers what it can within `graceMs`, then stops; what is left is counted as dropped. */
  close(graceMs: number): Promise<void>;
}

/** The ids an event carries: the session, and the handle with its opaque id when there is one. */
export interface EventSource {
  sessionId: number;
  handleId?: number;
  opaqueId?: string | null;
}

/** A stable id for each transport connection, as Janus hashes its transport instance: the same in session and transport events. */
const transportIds = new WeakMap<object, string>();
let nextTransportId = 1;
export function transportId(connection: object): string {
  let id = transportIds.get(connection);
  if (id === undefined) {
    id = String(nextTransportId++);
    transportIds.set(connection, id);
  }
  return id;
}

/** Wall-clock microseconds, with the monotonic clock's sub-millisecond part. */
function nowMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

export class EventBus {
  /** Bits of every type at least one handler wants. */
  readonly mask: number;

  constructor(
    private readonly emitter: string,
    private readonly handlers: readonly EventHandler[],
  ) {
    this.mask = handlers.reduce((m, h) => m | h.mask, 0);
  }

  /** Whether any handler wants this type. */
  wants(type: number): boolean {
    return (this.mask & type) !== 0;
  }

  get handlerCount(): number {
    return this.handlers.length;
  }

  emit(type: number, subtype: number, source: EventSource | null, body: EventBody): void {
    if ((this.mask & type) === 0) return;
    const event: JanusEvent = { emitter: this.emitter, type, timestamp: nowMicros(), event: body };
    if (subtype > 0) event.subtype = subtype;
    if (source) {
      event.session_id = source.sessionId;
      if (source.handleId !== undefined) event.handle_id = source.handleId;
      if (source.opaqueId !== undefined && source.opaqueId !== null) event.opaque_id = source.opaqueId;
    }
    for (const h of this.handlers) if ((h.mask & type) !== 0) h.accept(event);
  }

  // ---- one method per kind of event, in Janus's shape ------------------------------------------

  /** `created`, `destroyed`, `timeout`, `claimed`; the transport the session came through. */
  session(sessionId: number, name: string, transport?: { transport: string; id: string }): void {
    if (!this.wants(EventType.session)) return;
    this.emit(EventType.session, 0, { sessionId }, transport ? { name, transport } : { name });
  }

  /** `attached`, `detached`: the plugin, and the opaque id and token the client attached with. */
  handle(source: EventSource & { handleId: number }, name: string, plugin: string, token: string | null): void {
    if (!this.wants(EventType.handle)) return;
    const body: EventBody = { name, plugin };
    if (source.opaqueId) body['opaque_id'] = source.opaqueId;
    if (token) body['token'] = token;
    this.emit(EventType.handle, 0, source, body);
  }

  /** A jsep the client sent (`remote`) or ferry sent (`local`). */
  jsep(source: EventSource, owner: 'local' | 'remote', jsep: { type: string; sdp: string }): void {
    if (!this.wants(EventType.jsep)) return;
    this.emit(EventType.jsep, 0, source, { owner, jsep: { type: jsep.type, sdp: jsep.sdp } });
  }

  webrtcTransport(source: EventSource, e: WebRtcTransportEvent): void {
    if (!this.wants(EventType.webrtc)) return;
    const { subtype, body } = webrtcEventBody(e);
    this.emit(EventType.webrtc, subtype, source, body);
  }

  /** The PeerConnection is up (`webrtcup`) or went down (`hangup`, with why). */
  peerConnection(source: EventSource, connection: 'webrtcup' | 'hangup', reason?: string): void {
    if (!this.wants(EventType.webrtc)) return;
    const body: EventBody = reason !== undefined ? { connection, reason } : { connection };
    this.emit(EventType.webrtc, WebRtcSubtype.peerConnection, source, body);
  }

  mediaState(source: EventSource, info: { mid: string; type: string; receiving: boolean; substream?: number; seconds?: number }): void {
    if (!this.wants(EventType.media)) return;
    const body: EventBody = { mid: info.mid, media: info.type, receiving: info.receiving };
    if (info.substream !== undefined) body['substream'] = info.substream;
    if (info.seconds !== undefined) body['seconds'] = info.seconds;
    this.emit(EventType.media, MediaSubtype.state, source, body);
  }

  slowLink(source: EventSource, info: { mid: string; media: string; uplink: boolean; lost: number }): void {
    if (!this.wants(EventType.media)) return;
    this.emit(EventType.media, MediaSubtype.slowLink, source, { mid: info.mid, media: info.media, slow_link: info.uplink ? 'uplink' : 'downlink', lost_lastsec: info.lost });
  }

  mediaStats(source: EventSource, stats: MediaLineStats): void {
    if (!this.wants(EventType.media)) return;
    this.emit(EventType.media, MediaSubtype.stats, source, mediaStatsBody(stats));
  }

  /** What a plugin told its client, for the handlers too (Janus: a plugin's notify_event). */
  plugin(source: EventSource, plugin: string, data: EventBody): void {
    if (!this.wants(EventType.plugin)) return;
    this.emit(EventType.plugin, 0, source, { plugin, data });
  }

  /** A transport's own event (a WebSocket connected or disconnected, say); no session. */
  transport(transport: string, connection: object, data: EventBody): void {
    if (!this.wants(EventType.transport)) return;
    this.emit(EventType.transport, 0, null, { transport, id: transportId(connection), data });
  }

  core(subtype: number, body: EventBody): void {
    this.emit(EventType.core, subtype, null, body);
  }

  status(): EventHandlerStatus[] {
    return this.handlers.map((h) => h.status());
  }

  start(): void {
    for (const h of this.handlers) h.start();
  }

  async close(graceMs: number): Promise<void> {
    await Promise.allSettled(this.handlers.map((h) => h.close(graceMs)));
  }
}

/** A bus with no handler: every emit is a bit test and nothing more. */
export const NO_EVENTS = new EventBus('', []);
