/**
 * Janus HTTP/REST transport (janus_http.c) on fastify: POST requests on
 * `<base>[/<session>[/<handle>]]`, GET long polls on `<base>/<session>`,
 * CORS as Janus does, and Janus error bodies for every failure (never a 5xx).
 * The same class serves the Admin API (no long polls) given the AdminApi.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { JanusErrorCode } from '../core/JanusError.js';
import { isJanusId, type JsonObject } from '../core/Json.js';
import { LongPollSink } from '../core/TransportSink.js';
import type { SessionRegistry } from '../core/SessionRegistry.js';
import type { RequestAuth } from '../core/auth/RequestAuth.js';
import { errorEnvelope, type JanusApi } from './ApiBase.js';
import { JanusError } from '../core/JanusError.js';

export interface LongPollOptions {
  registry: SessionRegistry;
  auth: RequestAuth;
  keepaliveMs: number;
  /** Upper bound for `maxev` (the session queue cannot hold more anyway). */
  maxEvents: number;
}

export interface HttpTransportOptions {
  name: string;
  api: JanusApi;
  basePath: string;
  bind: string;
  port: number;
  bodyLimit: number;
  /** Janus `allow_origin`: null answers `*`. */
  allowOrigin: string | null;
  logger: Logger;
  /** Present on the Janus API listener only. */
  longPoll?: LongPollOptions;
  metrics?: { path: string; contentType: () => string; text: () => Promise<string> };
}

type Params = { sid?: string; hid?: string };
type Query = Record<string, string | string[] | undefined>;

/**
 * On close, how long requests already being handled may take to finish
 * before their connections are cut (a plugin request that never returns must
 * not hold shutdown). Long polls do not wait for it: they are answered first.
 */
const CLOSE_GRACE_MS = 500;

function firstQueryValue(query: Query, key: string): string | undefined {
  const v = query[key];
  return Array.isArray(v) ? v[0] : v;
}

export class HttpTransport {
  readonly sink = new LongPollSink();
  private readonly app: FastifyInstance;
  private readonly prefix: string;
  /** Each pending long poll's "answer now": withdraws it from its session queue and answers a keepalive. */
  private readonly pendingPolls = new Set<() => void>();
  private stopping = false;
  private closing: Promise<void> | null = null;

  constructor(private readonly options: HttpTransportOptions) {
    this.prefix = options.basePath === '/' ? '' : options.basePath.replace(/\/+$/, '');
    this.app = Fastify({
      logger: false,
      bodyLimit: options.bodyLimit,
      // close() answers what is pending, then lets the replies go out before the sockets close (see close()).
      forceCloseConnections: false,
      // A request that still arrives on an open connection while closing gets a Janus answer, not fastify's 503.
      return503OnClosing: false,
      // "/janus/" is the base path too, as in Janus.
      routerOptions: { maxParamLength: 256, ignoreTrailingSlash: true },
      // Malformed URLs (bad percent-encoding) are answered before routing: keep them Janus-shaped too.
      frameworkErrors: (error, _request, reply: FastifyReply) => {
        void reply.code(400).send(options.api.transportError(JanusErrorCode.TRANSPORT_SPECIFIC, `Bad request: ${error.message}`));
      },
    });
    this.setup();
  }

  get server(): FastifyInstance {
    return this.app;
  }

  private setup(): void {
    const app = this.app;
    const { api, allowOrigin } = this.options;
    // Janus reads any body as JSON whatever its Content-Type (janus.js sends text/plain or none).
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: this.options.bodyLimit }, (_req, body, done) => done(null, body));

    // janus_http_add_cors_headers
    app.addHook('onSend', async (request, reply, payload) => {
      // Shutting down: no keep-alive, so each connection ends once its answer is written.
      if (this.stopping) reply.header('Connection', 'close');
      reply.header('Access-Control-Allow-Origin', allowOrigin ?? '*');
      if (allowOrigin !== null) {
        reply.header('Access-Control-Allow-Credentials', 'true');
        reply.header('Vary', 'Origin');
      }
      reply.header('Access-Control-Max-Age', '86400');
      const acrm = request.headers['access-control-request-method'];
      const acrh = request.headers['access-control-request-headers'];
      if (typeof acrm === 'string') reply.header('Access-Control-Allow-Methods', acrm);
      if (typeof acrh === 'string') reply.header('Access-Control-Allow-Headers', acrh);
      return payload;
    });

    app.setErrorHandler((err: { statusCode?: number; code?: string; message?: string }, _request, reply) => {
      const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 200;
      const reason = err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? `Request body too large (limit ${this.options.bodyLimit} bytes)` : `Bad request: ${err.message ?? 'unknown'}`;
      if (status === 200) this.options.logger.error({ err }, 'unexpected HTTP transport error');
      void reply.code(status).send(api.transportError(status === 200 ? JanusErrorCode.UNKNOWN : JanusErrorCode.TRANSPORT_SPECIFIC, reason));
    });

    app.setNotFoundHandler((request, reply) => {
      const method = request.method;
      if (method !== 'GET' && method !== 'POST' && method !== 'OPTIONS' && method !== 'HEAD') {
        void reply.code(200).send(api.transportError(JanusErrorCode.TRANSPORT_SPECIFIC, `Unsupported method ${method}`));
        return;
      }
      void reply.code(404).send(api.transportError(JanusErrorCode.INVALID_REQUEST_PATH, 'Invalid path'));
    });

    app.options('*', async (_request, reply) => reply.code(200).send(''));

    const post = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
      const body = typeof request.body === 'string' ? request.body : '';
      const ctx: { sink: LongPollSink; pathSessionId?: string; pathHandleId?: string; remoteAddress?: string } = { sink: this.sink };
      if (request.socket.remoteAddress !== undefined) ctx.remoteAddress = request.socket.remoteAddress;
      if (request.params.sid !== undefined) ctx.pathSessionId = request.params.sid;
      if (request.params.hid !== undefined) ctx.pathHandleId = request.params.hid;
      return reply.code(200).send(await api.handleText(body, ctx));
    };
    const base = this.prefix === '' ? '/' : this.prefix;
    app.post(base, post);
    app.post(`${this.prefix}/:sid`, post);
    app.post(`${this.prefix}/:sid/:hid`, post);

    app.get(base, async (_request, reply) =>
      reply.code(404).send(api.transportError(JanusErrorCode.SESSION_NOT_FOUND, 'Invalid session')));
    app.get(`${this.prefix}/:sid`, async (request: FastifyRequest<{ Params: Params; Querystring: Query }>, reply) => {
      const sid = request.params.sid ?? '';
      if (sid === 'info' || sid === 'ping') {
        // GET /janus/info and /janus/ping become fake requests (janus_http.c).
        return reply.code(200).send(await api.handle({ janus: sid, transaction: fakeTransaction() }, { sink: this.sink }));
      }
      return this.longPoll(sid, request, reply);
    });
    app.get(`${this.prefix}/:sid/:hid`, async (request: FastifyRequest<{ Params: Params }>, reply) => {
      // A GET on a handle path is a long poll on its session: redirect there.
      const q = request.url.indexOf('?');
      const query = q >= 0 ? request.url.slice(q) : '';
      return reply.redirect(`${this.prefix}/${encodeURIComponent(request.params.sid ?? '')}${query}`, 302);
    });

    const metrics = this.options.metrics;
    if (metrics) {
      app.get(metrics.path, async (_request, reply) => reply.code(200).header('Content-Type', metrics.contentType()).send(await metrics.text()));
    }
  }

  private async longPoll(sid: string, request: FastifyRequest<{ Querystring: Query }>, reply: FastifyReply): Promise<FastifyReply> {
    const lp = this.options.longPoll;
    if (!lp) {
      return reply.code(200).send(this.options.api.transportError(JanusErrorCode.TRANSPORT_SPECIFIC, 'Long polls are not available on this API'));
    }
    const sessionId = /^\d{1,16}$/.test(sid) ? Number(sid) : NaN;
    if (!isJanusId(sessionId)) return reply.code(404).send(this.longPollError(JanusErrorCode.SESSION_NOT_FOUND, `No such session ${sid.slice(0, 64)}`, 0));
    // The transport checks auth itself for long polls, which bypass the core (janus_http.c).
    const query = request.query ?? {};
    if (!lp.auth.checkApi(firstQueryValue(query, 'apisecret'), firstQueryValue(query, 'token'))) {
      return reply.code(403).send(this.longPollError(JanusErrorCode.UNAUTHORIZED, 'Unauthorized request (wrong or missing secret/token)', 0));
    }
    const session = lp.registry.get(sessionId);
    if (!session || !session.live) return reply.code(404).send(this.longPollError(JanusErrorCode.SESSION_NOT_FOUND, `No such session ${sessionId}`, 0));
    session.touch(); // the long poll counts as a keepalive
    const maxevText = firstQueryValue(query, 'maxev');
    const parsed = maxevText !== undefined && /^-?\d{1,9}$/.test(maxevText) ? Number(maxevText) : 1;
    const maxev = Math.min(Math.max(1, parsed), lp.maxEvents);
    const payload = await new Promise<JsonObject | JsonObject[]>((resolve) => {
      let answered = false;
      const answer = (events: JsonObject[]) => {
        if (answered) return;
        answered = true;
        this.pendingPolls.delete(answerNow);
        if (events.length === 0) resolve(maxev > 1 ? [{ janus: 'keepalive' }] : { janus: 'keepalive' });
        else resolve(maxev > 1 ? events : (events[0] as JsonObject));
      };
      // A poll's wait may end early (shutdown) with what its keepalive timer would answer; queued events stay queued.
      const answerNow = () => {
        if (answered) return;
        cancel();
        answer([]);
      };
      const cancel = session.queue.poll(maxev, lp.keepaliveMs, answer);
      if (answered) return;
      if (this.stopping) {
        answerNow();
        return;
      }
      this.pendingPolls.add(answerNow);
      // Client gone before any event: withdraw the poll so no event is handed to a dead socket.
      reply.raw.once('close', () => {
        if (answered) return;
        cancel();
        answer([]);
      });
    });
    return reply.code(200).send(payload);
  }

  private longPollError(code: JanusError['code'], reason: string, sessionId: number): JsonObject {
    return errorEnvelope(new JanusError(code, reason), sessionId, undefined);
  }

  async listen(): Promise<{ host: string; port: number }> {
    await this.app.listen({ host: this.options.bind, port: this.options.port });
    const address = this.app.server.address();
    const port = typeof address === 'object' && address ? address.port : this.options.port;
    this.options.logger.info({ transport: this.options.name, host: this.options.bind, port }, 'listening');
    return { host: this.options.bind, port };
  }

  /**
   * Shutdown: every pending long poll is answered now. The gateway has
   * already ended the sessions, which hands each poll its session's last
   * events (`Session.end` closes the queue); a poll still waiting here gets a
   * keepalive — the answer a poll gets when its keepalive timer fires, which
   * every Janus client handles (janus.js polls again, finds the server gone
   * and reports it). Janus itself answers nothing well-formed:
   * janus_http_destroy resumes the suspended long polls with no response
   * text, so janus_http_response_callback ends the already started 200 with
   * MHD_CONTENT_READER_END_WITH_ERROR and MHD aborts the connection.
   * Then the listener closes; replies already on their way are written (with
   * `Connection: close`) before their sockets end, and whatever is still
   * running after CLOSE_GRACE_MS is cut. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.stopping = true;
    for (const answerNow of [...this.pendingPolls]) answerNow();
    const server = this.app.server;
    const grace = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
    try {
      await this.app.close();
    } finally {
      clearTimeout(grace);
    }
  }
}

function fakeTransaction(): string {
  return Math.random().toString(36).slice(2, 14);
}
