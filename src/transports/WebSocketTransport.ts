/**
 * Janus WebSocket transport (janus_websockets.c) on fastify + @fastify/websocket:
 * subprotocol `janus-protocol` (API) or `janus-admin-protocol` (Admin), one
 * JSON request per message, replies and events on the same socket. A closed
 * socket is `transport gone` for the sessions bound to it.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import fastifyWebsocket from '@fastify/websocket';
import type { WebSocket, RawData } from 'ws';
import type { Logger } from 'pino';
import { JanusErrorCode } from '../core/JanusError.js';
import type { JsonObject } from '../core/Json.js';
import type { SessionRegistry } from '../core/SessionRegistry.js';
import type { TransportSink } from '../core/TransportSink.js';
import type { EventBus } from '../events/EventBus.js';
import type { JanusApi } from './ApiBase.js';

export const JANUS_WS_PROTOCOL = 'janus-protocol';
export const JANUS_ADMIN_WS_PROTOCOL = 'janus-admin-protocol';

/** WebSocket readyStates (RFC 6455 §4: the connection is established; the closing handshake is done). */
const OPEN = 1;
const CLOSED = 3;
/** On close, how long clients get to answer the close frame before their sockets are cut. */
const CLOSE_GRACE_MS = 500;

/** One client connection; as a sink it pushes the events of the sessions bound to it. */
export class WebSocketConnection implements TransportSink {
  readonly kind = 'websocket' as const;
  readonly description = 'janus.transport.websockets';
  readonly boundSessions = new Set<{ readonly id: number }>();

  constructor(private readonly socket: WebSocket) {}

  push(event: JsonObject): boolean {
    if (this.socket.readyState !== OPEN) return false;
    this.socket.send(JSON.stringify(event));
    return true;
  }
}

export interface WebSocketTransportOptions {
  name: string;
  protocol: string;
  api: JanusApi;
  bind: string;
  port: number;
  /** Messages larger than this get a Janus 450 error (bigger frames than 4× it close the socket, RFC 6455 1009). */
  messageLimit: number;
  logger: Logger;
  /** Janus API only: sessions of a closed socket are ended or kept for reclaim. */
  registry?: SessionRegistry;
  /** Janus event handlers: each connection's `connected` and `disconnected` (type 128). */
  events?: EventBus;
}

function rawToBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** Fatal: invalid UTF-8 is an error, not U+FFFD; a byte-order mark stays in the text (and fails JSON parsing, as in jansson). */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function strictUtf8(buffer: Buffer): string | null {
  try {
    return UTF8.decode(buffer);
  } catch {
    return null;
  }
}

export class WebSocketTransport {
  private readonly app: FastifyInstance;
  private readonly connections = new Set<WebSocket>();

  constructor(private readonly options: WebSocketTransportOptions) {
    this.app = Fastify({ logger: false, forceCloseConnections: true });
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  private async setup(): Promise<void> {
    const { protocol } = this.options;
    await this.app.register(fastifyWebsocket, {
      options: {
        maxPayload: this.options.messageLimit * 4,
        // A client offering subprotocols must offer ours; one offering none is accepted (as lws does).
        handleProtocols: (protocols: Set<string>) => (protocols.has(protocol) ? protocol : false),
      },
    });
    this.app.get('/*', { websocket: true }, (socket, request) => this.onConnection(socket, request.socket.remoteAddress));
  }

  private onConnection(socket: WebSocket, remoteAddress: string | undefined): void {
    const { api, registry, logger, messageLimit, events } = this.options;
    const connection = new WebSocketConnection(socket);
    this.connections.add(socket);
    const admin = this.options.registry === undefined;
    events?.transport(connection.description, connection, { event: 'connected', admin_api: admin, ip: remoteAddress ?? null });
    socket.on('message', (data: RawData, isBinary: boolean) => {
      const buffer = rawToBuffer(data);
      const reply = (message: JsonObject) => {
        if (socket.readyState === OPEN) socket.send(JSON.stringify(message));
      };
      if (buffer.length > messageLimit) {
        reply(api.transportError(JanusErrorCode.TRANSPORT_SPECIFIC, `Message too large (limit ${messageLimit} bytes)`));
        return;
      }
      // janus_websockets.c never looks at the opcode: a binary frame's bytes are
      // parsed as JSON like a text frame's. ws has already refused text frames
      // that are not UTF-8 (close 1007); a binary frame that is not UTF-8 text
      // cannot be JSON, so it gets the parse error (454) Janus answers.
      const text = isBinary ? strictUtf8(buffer) : buffer.toString('utf8');
      if (text === null) {
        reply(api.transportError(JanusErrorCode.INVALID_JSON, 'Invalid Janus API request (binary frame is not UTF-8 text)'));
        return;
      }
      api.handleText(text, { sink: connection, ...(remoteAddress !== undefined ? { remoteAddress } : {}) }).then(reply, (err: unknown) => {
        logger.error({ err }, 'websocket request failed unexpectedly');
        reply(api.transportError(JanusErrorCode.UNKNOWN, 'Internal error'));
      });
    });
    socket.on('error', (err) => logger.debug({ err }, 'websocket error'));
    socket.on('close', () => {
      this.connections.delete(socket);
      events?.transport(connection.description, connection, { event: 'disconnected', admin_api: admin, ip: remoteAddress ?? null });
      registry?.transportGone(connection);
    });
  }

  async listen(): Promise<{ host: string; port: number }> {
    await this.setup();
    await this.app.listen({ host: this.options.bind, port: this.options.port });
    const address = this.app.server.address();
    const port = typeof address === 'object' && address ? address.port : this.options.port;
    this.options.logger.info({ transport: this.options.name, host: this.options.bind, port }, 'listening');
    return { host: this.options.bind, port };
  }

  /**
   * Closes every socket with 1001 (going away) and the listener. A client has
   * CLOSE_GRACE_MS to answer the close frame; one that does not is cut
   * (otherwise ws would wait 30 s for it, and so would shutdown).
   */
  async close(): Promise<void> {
    const sockets = [...this.connections];
    const closed = sockets.map((socket) => new Promise<void>((resolve) => {
      if (socket.readyState === CLOSED) resolve();
      else socket.once('close', () => resolve());
    }));
    for (const socket of sockets) socket.close(1001, 'server shutting down');
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => { timer = setTimeout(resolve, CLOSE_GRACE_MS); });
    await Promise.race([Promise.all(closed), grace]);
    clearTimeout(timer);
    for (const socket of sockets) if (socket.readyState !== CLOSED) socket.terminate();
    await this.app.close();
  }
}
