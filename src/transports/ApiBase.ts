/**
 * What the client API (ClientApi.ts) and the Admin API (AdminApi.ts) share:
 * the face both offer their transports (`JanusApi`), the envelope and id
 * checks, and the request loop (`ApiBase`). Transports only frame bytes;
 * envelopes, ids, auth and verbs are decided in exactly one place per API.
 */
import type { Logger } from 'pino';
import { JanusError, JanusErrorCode, isJanusError } from '../core/JanusError.js';
import { field, isJanusId, parseRequestText, type JsonObject } from '../core/Json.js';
import type { PluginRegistry } from '../core/PluginRegistry.js';
import type { SessionRegistry } from '../core/SessionRegistry.js';
import type { TransportSink } from '../core/TransportSink.js';
import type { RequestAuth } from '../core/auth/RequestAuth.js';

export interface RequestContext {
  sink: TransportSink;
  /** Ids from an HTTP path (`/janus/<session>/<handle>`), as text; the API validates them. */
  pathSessionId?: string;
  pathHandleId?: string;
  /** The client's address as the socket sees it (per-client quotas). */
  remoteAddress?: string;
}

/** A Janus API as its transports see it. */
export interface JanusApi {
  /** Parses one request text (size already checked by the transport) and handles it. */
  handleText(text: string, ctx: RequestContext): Promise<JsonObject>;
  handle(request: JsonObject, ctx: RequestContext): Promise<JsonObject>;
  /** Builds the error reply for a failure the transport itself detected (e.g. body too large). */
  transportError(code: (typeof JanusErrorCode)[keyof typeof JanusErrorCode], reason: string): JsonObject;
}

/** `janus_create_message`: session_id left out when 0, transaction when absent. */
export function envelope(janus: string, sessionId: number, transaction: string | undefined, extra?: JsonObject): JsonObject {
  const msg: JsonObject = { janus };
  if (sessionId > 0) msg['session_id'] = sessionId;
  if (transaction !== undefined) msg['transaction'] = transaction;
  return extra ? Object.assign(msg, extra) : msg;
}

export function errorEnvelope(err: unknown, sessionId: number, transaction: string | undefined): JsonObject {
  const janusError = isJanusError(err) ? err : new JanusError(JanusErrorCode.UNKNOWN, `Internal error: ${err instanceof Error ? err.message : String(err)}`);
  return envelope('error', sessionId, transaction, { error: { code: janusError.code, reason: janusError.reason } });
}

/** The common envelope prefix: transaction then verb, in Janus's order of checks. */
export function readEnvelope(req: JsonObject): { transaction: string; verb: string } {
  const transaction = field(req, 'transaction');
  if (transaction === undefined || transaction === null) {
    throw new JanusError(JanusErrorCode.MISSING_MANDATORY_ELEMENT, 'Missing mandatory element (transaction)');
  }
  if (typeof transaction !== 'string') {
    throw new JanusError(JanusErrorCode.INVALID_ELEMENT_TYPE, 'Invalid element type (transaction should be a string)');
  }
  const verb = field(req, 'janus');
  if (verb === undefined || verb === null) throw new JanusError(JanusErrorCode.MISSING_MANDATORY_ELEMENT, 'Missing mandatory element (janus)');
  if (typeof verb !== 'string') throw new JanusError(JanusErrorCode.INVALID_ELEMENT_TYPE, 'Invalid element type (janus should be a string)');
  return { transaction, verb: verb.toLowerCase() };
}

/** Transaction of a request if it is usable, for error replies raised before it was validated. */
export function transactionOf(req: unknown): string | undefined {
  if (typeof req !== 'object' || req === null) return undefined;
  const t = (req as JsonObject)['transaction'];
  return typeof t === 'string' ? t : undefined;
}

/**
 * Session and handle ids from body and path. Body ids must be positive
 * integers (467); a body id that differs from the path id is 457.
 */
export function readIds(req: JsonObject, ctx: RequestContext): { sessionId: number; handleId: number } {
  const sessionId = mergeId(field(req, 'session_id'), ctx.pathSessionId, 'session');
  const handleId = mergeId(field(req, 'handle_id'), ctx.pathHandleId, 'handle');
  return { sessionId, handleId };
}

function mergeId(bodyValue: unknown, pathValue: string | undefined, what: 'session' | 'handle'): number {
  let fromBody = 0;
  if (bodyValue !== undefined && bodyValue !== null && bodyValue !== 0) {
    if (!isJanusId(bodyValue)) {
      throw new JanusError(JanusErrorCode.INVALID_ELEMENT_TYPE, `Invalid element type (${what}_id should be a positive integer)`);
    }
    fromBody = bodyValue;
  }
  if (pathValue === undefined) return fromBody;
  const fromPath = /^\d{1,16}$/.test(pathValue) ? Number(pathValue) : NaN;
  if (!isJanusId(fromPath)) {
    throw new JanusError(
      what === 'session' ? JanusErrorCode.SESSION_NOT_FOUND : JanusErrorCode.HANDLE_NOT_FOUND,
      `No such ${what} ${pathValue.slice(0, 64)}`,
    );
  }
  if (fromBody !== 0 && fromBody !== fromPath) {
    throw new JanusError(JanusErrorCode.INVALID_REQUEST_PATH, `Conflicting ${what} ID (path ${fromPath}, body ${fromBody})`);
  }
  return fromPath;
}

/** Shared `handleText`: parse failures become error replies, never exceptions. */
export async function handleTextWith(
  api: Pick<JanusApi, 'handle'>,
  text: string,
  ctx: RequestContext,
  maxDepth: number,
  onParseError: (err: JanusError) => void,
): Promise<JsonObject> {
  let request: JsonObject;
  try {
    request = parseRequestText(text, maxDepth);
  } catch (err) {
    const janusError = isJanusError(err) ? err : new JanusError(JanusErrorCode.INVALID_JSON, 'JSON error');
    onParseError(janusError);
    return errorEnvelope(janusError, 0, undefined);
  }
  return api.handle(request, ctx);
}

/** What the shared request loop needs from an API's options. */
export interface ApiBaseOptions {
  logger: { error(obj: object, msg: string): void };
  maxJsonDepth: number;
  /** Metrics hook: one call per request with its verb ("unknown" if not a known verb) and result code (0 = success). */
  onRequest?: (verb: string, code: number) => void;
}

/** What both APIs are built from (the Admin API adds its own). */
export interface ApiOptions extends ApiBaseOptions {
  registry: SessionRegistry;
  plugins: PluginRegistry;
  auth: RequestAuth;
  logger: Logger;
  serverInfo: () => JsonObject;
}

/**
 * The request loop both APIs share: parse, envelope, ids, an optional
 * authorization hook, dispatch, and one count per request. Subclasses
 * supply their verbs and `dispatch`.
 */
export abstract class ApiBase implements JanusApi {
  protected constructor(
    private readonly base: ApiBaseOptions,
    /** Verbs counted by name; anything else is "unknown" so hostile input cannot explode label sets. */
    private readonly knownVerbs: ReadonlySet<string>,
    private readonly what: string,
  ) {}

  handleText(text: string, ctx: RequestContext): Promise<JsonObject> {
    return handleTextWith(this, text, ctx, this.base.maxJsonDepth, (err) => this.count('unknown', err.code));
  }

  transportError(code: JanusError['code'], reason: string): JsonObject {
    this.count('unknown', code);
    return errorEnvelope(new JanusError(code, reason), 0, undefined);
  }

  async handle(request: JsonObject, ctx: RequestContext): Promise<JsonObject> {
    let verb = 'unknown';
    let sessionId = 0;
    try {
      const env = readEnvelope(request);
      verb = env.verb;
      const ids = readIds(request, ctx);
      sessionId = ids.sessionId;
      this.authorize(verb, request);
      const reply = await this.dispatch(request, env.transaction, verb, ids.sessionId, ids.handleId, ctx);
      this.count(verb, 0);
      return reply;
    } catch (err) {
      if (!isJanusError(err)) this.base.logger.error({ err, verb }, `${this.what} failed unexpectedly`);
      this.count(verb, isJanusError(err) ? err.code : JanusErrorCode.UNKNOWN);
      return errorEnvelope(err, sessionId, transactionOf(request));
    }
  }

  /** Throws a JanusError when the request may not proceed; the client API authorizes per verb in dispatch. */
  protected authorize(_verb: string, _request: JsonObject): void {}

  protected abstract dispatch(
    request: JsonObject,
    transaction: string,
    verb: string,
    sessionId: number,
    handleId: number,
    ctx: RequestContext,
  ): Promise<JsonObject>;

  private count(verb: string, code: number): void {
    this.base.onRequest?.(this.knownVerbs.has(verb) ? verb : 'unknown', code);
  }
}
