/**
 * The Janus client API (janus.c janus_process_incoming_request), once, for
 * every transport: envelope checks, ids, auth, path levels and verbs.
 */
import type { Handle } from '../core/Handle.js';
import { JanusError, JanusErrorCode } from '../core/JanusError.js';
import { optionalString, requireString } from '../core/Fields.js';
import { field, isJanusId, isJsonObject, type JsonObject, type JsonValue } from '../core/Json.js';
import type { Jsep, TrickleCandidate } from '../core/Media.js';
import type { Session } from '../core/Session.js';
import { clientKey } from '../core/Quotas.js';
import { envelope, ApiBase, type ApiOptions, type RequestContext } from './ApiBase.js';

/*
 * Where each verb is handled, as janus.c janus_process_incoming_request decides:
 * - no session id: `info`, `ping`, `create`; any other verb, known or not, is
 *   457 "Unhandled request 'x' at this path";
 * - with a session id: `keepalive` and `claim` at either level, `attach` and
 *   `destroy` only without a handle id, the handle verbs only with one (457
 *   otherwise); every other verb, `create`, `info` and `ping` included, is
 *   453 "Unknown request 'x'".
 */
const ROOT_VERBS = new Set(['info', 'ping', 'create']);
const ANY_LEVEL_VERBS = new Set(['keepalive', 'claim']);
const SESSION_ONLY_VERBS = new Set(['attach', 'destroy']);
const HANDLE_ONLY_VERBS = new Set(['message', 'trickle', 'detach', 'hangup']);
/** Verbs as metric labels; anything else is counted as "unknown" so hostile input cannot explode label sets. */
export const JANUS_VERBS: ReadonlySet<string> = new Set([...ROOT_VERBS, ...ANY_LEVEL_VERBS, ...SESSION_ONLY_VERBS, ...HANDLE_ONLY_VERBS]);

/** Bound on trickle batches: a real browser sends a handful of candidates per m-line. */
const MAX_TRICKLE_CANDIDATES = 256;

export class ClientApi extends ApiBase {
  constructor(private readonly options: ApiOptions) {
    super(options, JANUS_VERBS, 'request');
  }

  protected async dispatch(
    req: JsonObject,
    transaction: string,
    verb: string,
    sessionId: number,
    handleId: number,
    ctx: RequestContext,
  ): Promise<JsonObject> {
    const { registry, auth } = this.options;
    // janus.c checks `id` with the envelope (incoming_request_parameters), before any path or verb.
    const requested = field(req, 'id');
    if (requested !== undefined && requested !== null && requested !== 0 && !isJanusId(requested)) {
      throw new JanusError(JanusErrorCode.INVALID_ELEMENT_TYPE, 'Invalid element type (id should be a positive integer)');
    }
    if (sessionId === 0 && handleId === 0) {
      if (verb === 'info') return { janus: 'server_info', transaction, ...this.options.serverInfo() };
      if (verb === 'ping') return envelope('pong', 0, transaction);
      if (verb !== 'create') throw wrongPath(verb);
      // Then, for create: not accepting sessions (472) before the secret or token (403), as in janus.c.
      if (!registry.acceptingNewSessions) throw new JanusError(JanusErrorCode.NOT_ACCEPTING_SESSIONS, 'Not accepting new sessions');
      this.requireApiAuth(req);
      const session = registry.create(ctx.sink, isJanusId(requested) ? requested : undefined, this.clientOf(req, ctx));
      return envelope('success', 0, transaction, { data: { id: session.id } });
    }
    if (sessionId === 0) throw new JanusError(JanusErrorCode.SESSION_NOT_FOUND, 'Invalid session');
    this.requireApiAuth(req);
    const session = registry.get(sessionId);
    if (!session || !session.live) throw new JanusError(JanusErrorCode.SESSION_NOT_FOUND, `No such session ${sessionId}`);
    session.touch();
    const handle = handleId === 0 ? undefined : session.handles.get(handleId);
    if (handleId !== 0 && !handle) throw new JanusError(JanusErrorCode.HANDLE_NOT_FOUND, `No such handle ${handleId} in session ${sessionId}`);
    if (ANY_LEVEL_VERBS.has(verb) || (!handle && SESSION_ONLY_VERBS.has(verb))) return this.sessionRequest(req, transaction, verb, session, ctx);
    if (handle && HANDLE_ONLY_VERBS.has(verb)) return this.handleRequest(req, transaction, verb, session, handle);
    if (SESSION_ONLY_VERBS.has(verb) || HANDLE_ONLY_VERBS.has(verb)) throw wrongPath(verb);
    throw new JanusError(JanusErrorCode.UNKNOWN_REQUEST, `Unknown request '${verb.slice(0, 64)}'`);
  }

  /** Quota key: the token when token auth is on and it is valid, else the remote address. */
  private clientOf(req: JsonObject, ctx: RequestContext): string {
    const token = field(req, 'token');
    const tokens = this.options.auth.tokens;
    const valid = tokens.enabled && typeof token === 'string' && tokens.isValid(token) ? token : null;
    return clientKey(ctx.remoteAddress, valid);
  }

    private requireApiAuth(req: JsonObject): void {
    if (!this.options.auth.checkApi(field(req, 'apisecret'), field(req, 'token'))) {
      throw new JanusError(JanusErrorCode.UNAUTHORIZED, 'Unauthorized request (wrong or missing secret/token)');
    }
  }

  private sessionRequest(req: JsonObject, transaction: string, verb: string, session: Session, ctx: RequestContext): JsonObject {
    switch (verb) {
      case 'keepalive':
        return envelope('ack', session.id, transaction);
      case 'attach': {
        const pluginName = requireString(req, 'plugin');
        const opaqueId = optionalString(req, 'opaque_id');
        const token = field(req, 'token');
        const plugin = this.options.plugins.get(pluginName);
        if (!plugin) throw new JanusError(JanusErrorCode.PLUGIN_NOT_FOUND, `No such plugin '${pluginName.slice(0, 128)}'`);
        const tokens = this.options.auth.tokens;
        if (tokens.enabled && typeof token === 'string' && !tokens.allowsPlugin(token, pluginName)) {
          throw new JanusError(JanusErrorCode.UNAUTHORIZED_PLUGIN, `Provided token can't access plugin '${pluginName}'`);
        }
        const handle = session.attach(plugin, opaqueId, typeof token === 'string' ? token : null);
        return envelope('success', session.id, transaction, { data: { id: handle.id } });
      }
      case 'destroy':
        session.end('destroy');
        return envelope('success', session.id, transaction);
      case 'claim':
        this.options.registry.claim(session, ctx.sink);
        return envelope('success', session.id, transaction);
      default:
        throw wrongPath(verb);
    }
  }

  private async handleRequest(req: JsonObject, transaction: string, verb: string, session: Session, handle: Handle): Promise<JsonObject> {
    switch (verb) {
      case 'message': {
        const body = field(req, 'body');
        if (body === undefined || body === null) throw new JanusError(JanusErrorCode.MISSING_MANDATORY_ELEMENT, 'Missing mandatory element (body)');
        if (!isJsonObject(body)) throw new JanusError(JanusErrorCode.INVALID_ELEMENT_TYPE, 'Invalid element type (body should be an object)');
        const jsep = readJsep(field(req, 'jsep'));
        const reply = await handle.message(transaction, body, jsep);
        if (reply.kind === 'ok') {
          return envelope('success', session.id, transaction, {
            sender: handle.id,
            plugindata: { plugin: handle.plugin.info.package, data: reply.data },
          });
        }
        if (reply.kind === 'wait') return envelope('ack', session.id, transaction, reply.hint !== undefined ? { hint: reply.hint } : undefined);
        throw new JanusError(JanusErrorCode.PLUGIN_MESSAGE, 'Plugin error');
      }
      case 'trickle':
        handle.trickle(readCandidates(req));
        return envelope('ack', session.id, transaction);
      case 'detach': {
        const failure = handle.end('detach');
        if (failure !== null) throw new JanusError(JanusErrorCode.PLUGIN_DETACH, `Couldn't detach from plugin: ${failure}`);
        return envelope('success', session.id, transaction);
      }
      case 'hangup':
        handle.hangup('Janus API');
        return envelope('success', session.id, transaction);
      default:
        throw wrongPath(verb);
    }
  }
}

function wrongPath(verb: string): JanusError {
  return new JanusError(JanusErrorCode.INVALID_REQUEST_PATH, `Unhandled request '${verb.slice(0, 64)}' at this path`);
}


/**
 * jsep validation: object (467), `type` offer|answer (456/467/464), `sdp` a
 * string that looks like SDP (RFC 8866 §5: starts with "v=0" and has an
 * origin and at least a session name) (456/467/465).
 */
function readJsep(value: JsonValue | undefined): Jsep | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isJsonObject(value)) throw new JanusError(JanusErrorCode.INVALID_ELEMENT_TYPE, 'Invalid element type (jsep should be an object)');
  const type = field(value, 'type');
  if (type === undefined || type === null) throw new JanusError(JanusErrorCode.MISSING_MANDATORY_ELEMENT, 'JSEP error: missing mandatory element (type)');
  if (typeof type !== 'string') throw new JanusError(JanusErrorCode.INVALID_ELEMENT_TYPE, 'JSEP error: invalid element type (type should be a string)');
  const lower = type.toLowerCase();
  if (lower !== 'offer' && lower !== 'answer') {
    throw new JanusError(JanusErrorCode.JSEP_UNKNOWN_TYPE, `JSEP error: unknown message type '${type.slice(0, 32)}'`);
  }
  const sdp = field(value, 'sdp');
  if (sdp === undefined || sdp === null) throw new JanusError(JanusErrorCode.MISSING_MANDATORY_ELEMENT, 'JSEP error: missing mandatory element (sdp)');
  if (typeof sdp !== 'string') throw new JanusError(JanusErrorCode.INVALID_ELEMENT_TYPE, 'JSEP error: invalid element type (sdp should be a string)');
  if (!looksLikeSdp(sdp)) throw new JanusError(JanusErrorCode.JSEP_INVALID_SDP, 'JSEP error: invalid SDP');
  const trickle = field(value, 'trickle');
  if (trickle !== undefined && trickle !== null && typeof trickle !== 'boolean') {
    throw new JanusError(JanusErrorCode.INVALID_ELEMENT_TYPE, 'JSEP error: invalid element type (trickle should be a boolean)');
  }
  return { ...value, type: lower, sdp } as Jsep;
}

function looksLikeSdp(sdp: string): boolean {
  const lines = sdp.split(/\r?\n/);
  return lines[0] === 'v=0' && lines.some((l) => l.startsWith('o=')) && lines.some((l) => l.startsWith('s='));
}

/**
 * Janus `trickle`: exactly one of `candidate` / `candidates` (both → 454,
 * neither → 456), then `candidates` must be an array (467). As in janus.c, a
 * key that is present counts even when its value is JSON null, so
 * `{"candidates": null}` is a non-array (467), not a missing element.
 */
function readCandidates(req: JsonObject): TrickleCandidate[] {
  const one = field(req, 'candidate');
  const many = field(req, 'candidates');
  const hasOne = one !== undefined;
  const hasMany = many !== undefined;
  if (hasOne && hasMany) throw new JanusError(JanusErrorCode.INVALID_JSON, "Can't have both candidate and candidates");
  if (!hasOne && !hasMany) throw new JanusError(JanusErrorCode.MISSING_MANDATORY_ELEMENT, 'Missing mandatory element (candidate|candidates)');
  if (hasOne) return [checkCandidate(one)];
  if (!Array.isArray(many)) throw new JanusError(JanusErrorCode.INVALID_ELEMENT_TYPE, 'Invalid element type (candidates should be an array)');
  if (many.length > MAX_TRICKLE_CANDIDATES) {
    throw new JanusError(JanusErrorCode.INVALID_ELEMENT_TYPE, `Invalid element type (more than ${MAX_TRICKLE_CANDIDATES} candidates)`);
  }
  return many.map(checkCandidate);
}

/** A candidate is `{completed: true}` or `{candidate: string, sdpMid?: string, sdpMLineIndex?: integer}`. */
function checkCandidate(value: JsonValue | undefined): TrickleCandidate {
  if (!isJsonObject(value)) throw new JanusError(JanusErrorCode.INVALID_ELEMENT_TYPE, 'Invalid element type (candidate should be an object)');
  if (field(value, 'completed') === true) return { completed: true };
  const candidate = field(value, 'candidate');
  if (candidate === undefined || candidate === null) throw new JanusError(JanusErrorCode.MISSING_MANDATORY_ELEMENT, 'Missing mandatory element (candidate)');
  if (typeof candidate !== 'string') throw new JanusError(JanusErrorCode.INVALID_ELEMENT_TYPE, 'Invalid element type (candidate should be a string)');
  const mid = field(value, 'sdpMid');
  if (mid !== undefined && mid !== null && typeof mid !== 'string') throw new JanusError(JanusErrorCode.INVALID_ELEMENT_TYPE, 'Invalid element type (sdpMid should be a string)');
  const index = field(value, 'sdpMLineIndex');
  if (index !== undefined && index !== null && !(typeof index === 'number' && Number.isInteger(index) && index >= 0)) {
    throw new JanusError(JanusErrorCode.INVALID_ELEMENT_TYPE, 'Invalid element type (sdpMLineIndex should be a non-negative integer)');
  }
  const out: TrickleCandidate = { candidate };
  if (typeof mid === 'string') out['sdpMid'] = mid;
  if (typeof index === 'number') out['sdpMLineIndex'] = index;
  return out;
}
