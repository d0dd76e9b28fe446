/**
 * ferry as a Janus client of itself: a session with one plugin handle,
 * created and driven in-process through the core (SessionRegistry, Session,
 * Handle) exactly as a transport drives them, so a WHIP publisher is a
 * VideoRoom publisher and a WHEP player a Streaming viewer in every respect
 * (quotas, Admin, ferry_status, the one ending path). Its events arrive on
 * an `internal` TransportSink that always pushes.
 */
import { randomBytes } from 'node:crypto';
import type { Handle } from '../core/Handle.js';
import { JanusError, JanusErrorCode } from '../core/JanusError.js';
import type { JsonObject } from '../core/Json.js';
import type { Jsep, TrickleCandidate } from '../core/Media.js';
import type { PluginRegistry } from '../core/PluginRegistry.js';
import type { Session, SessionEndReason } from '../core/Session.js';
import type { SessionRegistry } from '../core/SessionRegistry.js';
import type { TransportSink } from '../core/TransportSink.js';

/** How long a plugin may take to answer an asynchronous request before the client gives up. */
const REPLY_TIMEOUT_MS = 15_000;

/** The sink of every in-process session of one kind: routes each event to its session's client. */
export class InternalSink implements TransportSink {
  readonly kind = 'internal' as const;
  readonly boundSessions = new Set<{ readonly id: number }>();
  private readonly clients = new Map<number, InternalClient>();

  constructor(readonly description: string) {}

  push(event: JsonObject): boolean {
    const id = event['session_id'];
    if (typeof id === 'number') this.clients.get(id)?.deliver(event);
    return true;
  }

  register(client: InternalClient): void {
    this.clients.set(client.session.id, client);
  }

  forget(client: InternalClient): void {
    if (this.clients.get(client.session.id) === client) this.clients.delete(client.session.id);
  }
}

export interface PluginReplyData {
  data: JsonObject;
  jsep?: Jsep;
}

export class InternalClient {
  private readonly waiters = new Map<string, (event: JsonObject) => void>();
  private readonly listeners: Array<(event: JsonObject) => void> = [];

  private constructor(
    readonly session: Session,
    readonly handle: Handle,
    private readonly sink: InternalSink,
  ) {}

  /**
   * A session (counted for `client`, the quota key of whoever asked) with one handle on
   * `plugin`. The session never expires by the Janus session timeout: what ends it is the
   * owner (a DELETE), or the handle's media ending (see WhipWhep).
   */
  static open(options: { registry: SessionRegistry; plugins: PluginRegistry; sink: InternalSink; client: string; plugin: string; opaqueId: string }): InternalClient {
    const plugin = options.plugins.get(options.plugin);
    if (!plugin) throw new JanusError(JanusErrorCode.PLUGIN_NOT_FOUND, `No such plugin '${options.plugin}'`);
    const session = options.registry.create(options.sink, undefined, options.client);
    session.timeoutOverride = 0;
    let handle: Handle;
    try {
      handle = session.attach(plugin, options.opaqueId, null);
    } catch (err) {
      session.end('destroy');
      throw err;
    }
    const client = new InternalClient(session, handle, options.sink);
    options.sink.register(client);
    return client;
  }

  /** Events for this session that answer no request (hangup, detached, plugin notifications). */
  onEvent(listener: (event: JsonObject) => void): void {
    this.listeners.push(listener);
  }

  deliver(event: JsonObject): void {
    const transaction = event['transaction'];
    if (event['janus'] === 'event' && typeof transaction === 'string') {
      const waiter = this.waiters.get(transaction);
      if (waiter) {
        this.waiters.delete(transaction);
        waiter(event);
        return;
      }
    }
    for (const l of this.listeners) l(event);
  }

  /**
   * A `message` on the handle: the plugin's synchronous data, or the event answering it
   * (with its jsep). Core refusals (bad SDP, quotas) throw their JanusError.
   */
  async request(body: JsonObject, jsep?: Jsep): Promise<PluginReplyData> {
    const transaction = `internal-${randomBytes(6).toString('hex')}`;
    let timer: NodeJS.Timeout | undefined;
    const answered = new Promise<JsonObject>((resolve, reject) => {
      this.waiters.set(transaction, resolve);
      timer = setTimeout(() => {
        this.waiters.delete(transaction);
        reject(new JanusError(JanusErrorCode.UNKNOWN, 'The plugin did not answer in time'));
      }, REPLY_TIMEOUT_MS);
      timer.unref();
    });
    try {
      const reply = await this.handle.message(transaction, body, jsep);
      if (reply.kind === 'ok') return { data: reply.data };
      if (reply.kind === 'error') throw new JanusError(JanusErrorCode.PLUGIN_MESSAGE, reply.reason);
      const event = await answered;
      const plugindata = event['plugindata'] as JsonObject | undefined;
      const data = (plugindata?.['data'] ?? {}) as JsonObject;
      const eventJsep = event['jsep'] as Jsep | undefined;
      return eventJsep ? { data, jsep: eventJsep } : { data };
    } finally {
      clearTimeout(timer);
      this.waiters.delete(transaction);
      answered.catch(() => undefined);
    }
  }

  trickle(candidates: TrickleCandidate[]): void {
    this.handle.trickle(candidates);
  }

  get ended(): boolean {
    return !this.session.live;
  }

  /** Ends the session through the core's one ending (handle detached, media and ports released). Idempotent. */
  end(reason: SessionEndReason): void {
    this.sink.forget(this);
    this.session.end(reason);
  }
}
