/**
 * Messages between nodes over Redis pub/sub, on a connection of its own (a subscribed Redis
 * connection takes no other commands):
 *
 * - `ferry:events`: cluster events every node hears (a participant joined, published,
 *   unpublished or left; a room was created, edited or destroyed; a node left). Pub/sub is
 *   at-most-once, so events are the fast path only: the directory keys are the truth, and every
 *   node reconciles against them each tick.
 * - `ferry:rpc:<node>`: requests to one node and their replies (`publish_remotely`,
 *   `unpublish_remotely`, `kick`), each with an id and a bounded wait.
 *
 * Why Redis rather than the other node's Admin or Janus API: the nodes already share it and
 * its credentials; the Admin API listens on loopback by default and would need every node's
 * admin_secret; and a request to a node that is gone simply times out, as its heartbeat does.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

import { isJsonObject, type JsonObject } from '../core/Json.js';
import { keys } from './ClusterDirectory.js';

const RPC_TIMEOUT_MS = 3000;

export type RpcHandler = (params: JsonObject, from: string) => JsonObject | Promise<JsonObject>;

interface Pending {
  resolve(result: JsonObject): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class ClusterBus {
  private readonly pending = new Map<string, Pending>();
  private readonly handlers = new Map<string, RpcHandler>();
  private closed = false;

  constructor(
    private readonly sub: Redis,
    private readonly pub: Redis,
    private readonly nodeId: string,
    private readonly logger: Logger,
    private readonly onEvent: (event: JsonObject) => void,
  ) {}

  async start(): Promise<void> {
    this.sub.on('message', (channel: string, text: string) => this.receive(channel, text));
    await this.sub.connect();
    await this.sub.subscribe(keys.events, keys.rpc(this.nodeId));
  }

  handle(method: string, handler: RpcHandler): void {
    this.handlers.set(method, handler);
  }

  /** Asks `node` to run `method`; rejects on its error, or when no answer comes in time. */
  request(node: string, method: string, params: JsonObject, timeoutMs = RPC_TIMEOUT_MS): Promise<JsonObject> {
    if (this.closed) return Promise.reject(new Error('cluster bus closed'));
    const id = randomUUID();
    return new Promise<JsonObject>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`node ${node} did not answer ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.pub.publish(keys.rpc(node), JSON.stringify({ kind: 'request', id, from: this.nodeId, method, params })).catch((err: unknown) => {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(err instanceof Error ? err : new Error(String(err)));
      });
    });
  }

  private receive(channel: string, text: string): void {
    if (this.closed) return;
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      this.logger.warn({ channel }, 'cluster: malformed message dropped');
      return;
    }
    if (!isJsonObject(message)) return;
    if (channel === keys.events) {
      if (message['node'] !== this.nodeId) this.onEvent(message);
      return;
    }
    if (message['kind'] === 'reply') {
      const p = this.pending.get(String(message['id']));
      if (!p) return;
      this.pending.delete(String(message['id']));
      clearTimeout(p.timer);
      if (message['ok'] === true && isJsonObject(message['result'])) p.resolve(message['result']);
      else p.reject(new Error(String(message['error'] ?? 'failed')));
      return;
    }
    if (message['kind'] === 'request') void this.serve(message);
  }

  private async serve(message: JsonObject): Promise<void> {
    const from = String(message['from']);
    const handler = this.handlers.get(String(message['method']));
    let reply: JsonObject;
    try {
      if (!handler) throw new Error(`unknown method ${String(message['method'])}`);
      const params = isJsonObject(message['params']) ? message['params'] : {};
      reply = { kind: 'reply', id: message['id'] ?? null, ok: true, result: await handler(params, from) };
    } catch (err) {
      reply = { kind: 'reply', id: message['id'] ?? null, ok: false, error: err instanceof Error ? err.message : String(err) };
    }
    await this.pub.publish(keys.rpc(from), JSON.stringify(reply)).catch((err: unknown) => this.logger.warn({ err, to: from }, 'cluster: reply not sent'));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error('cluster bus closed'));
    }
    this.pending.clear();
    await this.sub.quit().catch(() => this.sub.disconnect());
  }
}
