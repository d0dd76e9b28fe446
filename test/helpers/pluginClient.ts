/**
 * One Janus session with one plugin handle over the WebSocket API, as a
 * janus.js application holds it: synchronous requests, asynchronous ones
 * (`ack`, then the event carrying the same transaction), and the handle's
 * other events. The plugin suites' clients extend it.
 */
import { JanusWs, type Json } from './http.js';

export class PluginClient {
  constructor(readonly ws: JanusWs, readonly sessionId: number, readonly handleId: number, private readonly ownsSocket: boolean) {}

  /** Creates a session on `ws` (a new socket when absent) and attaches `plugin`. */
  protected static async attach(wsUrl: string, plugin: string, ws?: JanusWs): Promise<{ ws: JanusWs; sessionId: number; handleId: number; ownsSocket: boolean }> {
    const socket = ws ?? (await JanusWs.connect(wsUrl));
    const created = await socket.request({ janus: 'create' });
    const sessionId = created['data'].id as number;
    const attached = await socket.request({ janus: 'attach', session_id: sessionId, plugin });
    if (attached['janus'] !== 'success') throw new Error(`attach failed: ${JSON.stringify(attached)}`);
    return { ws: socket, sessionId, handleId: attached['data'].id as number, ownsSocket: ws === undefined };
  }

  /** A synchronous request: the `success` reply's plugindata.data. */
  async sync(body: Record<string, unknown>): Promise<Json> {
    const reply = await this.ws.request({ janus: 'message', session_id: this.sessionId, handle_id: this.handleId, body });
    if (reply['janus'] !== 'success') throw new Error(`expected success, got ${JSON.stringify(reply)}`);
    return reply['plugindata'].data as Json;
  }

  /** An asynchronous request: `ack`, then the event with the same transaction (error events included). */
  async send(body: Record<string, unknown>, jsep?: Record<string, unknown>, ms = 10_000): Promise<{ data: Json; jsep?: Json }> {
    const transaction = `t-${Math.random().toString(36).slice(2)}`;
    const eventPromise = this.ws.nextEvent((e) => e['transaction'] === transaction && e['janus'] === 'event', ms);
    const reply = await this.ws.request({ janus: 'message', session_id: this.sessionId, handle_id: this.handleId, body, transaction, ...(jsep ? { jsep } : {}) });
    if (reply['janus'] !== 'ack') {
      eventPromise.catch(() => undefined);
      throw new Error(`expected ack, got ${JSON.stringify(reply)}`);
    }
    const event = await eventPromise;
    return { data: event['plugindata'].data as Json, jsep: event['jsep'] as Json | undefined };
  }

  /** Like `send`, but an error event throws. */
  async call(body: Record<string, unknown>, jsep?: Record<string, unknown>, ms = 10_000): Promise<{ data: Json; jsep?: Json }> {
    const r = await this.send(body, jsep, ms);
    if (r.data['error_code'] !== undefined) throw new Error(`${String(body['request'])} failed: ${JSON.stringify(r.data)}`);
    return r;
  }

  /** Next event for this handle matching `match` (plugin events without a transaction, core events). */
  next(match: (e: Json) => boolean, ms = 10_000): Promise<Json> {
    return this.ws.nextEvent((e) => e['sender'] === this.handleId && match(e), ms);
  }

  /** Next core event (webrtcup, media, hangup) for this handle. */
  core(kind: string, ms = 10_000): Promise<Json> {
    return this.next((e) => e['janus'] === kind, ms);
  }

  async close(): Promise<void> {
    await this.ws.request({ janus: 'destroy', session_id: this.sessionId }).catch(() => undefined);
    if (this.ownsSocket) await this.ws.close();
  }
}
