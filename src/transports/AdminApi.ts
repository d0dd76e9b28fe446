/**
 * The Janus Admin API (janus.c janus_process_incoming_admin_request), for
 * both admin transports. `admin_secret` is required on everything but
 * `info`/`ping`. `ferry_status` adds the derived resource counts.
 */
import type { QuotaStatus } from '../core/Quotas.js';
import type { EventHandlerStatus } from '../events/EventBus.js';
import { JanusError, JanusErrorCode } from '../core/JanusError.js';
import { requireInteger, requireString } from '../core/Fields.js';
import { field, isJsonObject, type JsonObject } from '../core/Json.js';
import type { Session } from '../core/Session.js';
import type { PluginRegistry } from '../core/PluginRegistry.js';
import { envelope, ApiBase, type ApiOptions } from './ApiBase.js';
import type { MediaThreadStatus } from '../core/Status.js';

const NO_SECRET_VERBS = new Set(['info', 'ping']);
const GLOBAL_VERBS = new Set([
  'info', 'ping', 'get_status', 'list_sessions', 'set_session_timeout', 'set_log_level', 'accept_new_sessions',
  'message_plugin', 'add_token', 'list_tokens', 'allow_token', 'disallow_token', 'remove_token', 'ferry_status',
]);
const SESSION_VERBS = new Set(['list_handles', 'destroy_session', 'set_session_timeout']);
const HANDLE_VERBS = new Set(['handle_info', 'detach_handle', 'hangup_webrtc']);
export const ADMIN_VERBS: ReadonlySet<string> = new Set([...GLOBAL_VERBS, ...SESSION_VERBS, ...HANDLE_VERBS]);

/** Counts for `ferry_status`, all derived at the moment of the request. */
export interface FerryStatus {
  sessions: number;
  handles: number;
  peer_connections: number;
  /** null until the media engine is wired into the gateway. */
  native_endpoints: number | null;
  port_leases: number | null;
  port_pools: { name: string; range: string; leased: number; free: number; leases: { port: number; owner: string; since: number }[] }[];
  /** Engine counters summed over endpoints (rx/tx packets, drops by reason); null without an engine. */
  engine: Record<string, number> | null;
  /** Per media thread: load, packets, drops, queue depth and overflows (empty without an engine). */
  media_threads: MediaThreadStatus[];
  /** SCTP associations and data channels now, messages, drops and how associations ended (null without WebRTC). */
  data_channels?: JsonObject | null;
  long_poll_waiters: number;
  queued_events: number;
  /** What per-client quotas count now (clients, sessions, PeerConnections, rooms). */
  quotas?: QuotaStatus;
  /** Each Janus event handler: where it delivers, its backlog, what it sent and dropped. */
  event_handlers?: EventHandlerStatus[];
  /** In a cluster: this node's view of it (nodes and their load, rooms owned, cascades in and out). */
  cluster?: JsonObject;
}

export interface AdminApiOptions extends ApiOptions {
  status: () => FerryStatus;
  /** Janus log levels 0 (none) … 7 (debug). */
  logLevel: { get(): number; set(level: number): void };
  candidatesTimeout: number;
}

export class AdminApi extends ApiBase {
  constructor(private readonly options: AdminApiOptions) {
    super(options, ADMIN_VERBS, 'admin request');
  }

  /** `admin_secret` on every Admin request but info/ping. */
  protected override authorize(verb: string, request: JsonObject): void {
    if (!NO_SECRET_VERBS.has(verb) && !this.options.auth.checkAdmin(field(request, 'admin_secret'))) {
      throw new JanusError(JanusErrorCode.UNAUTHORIZED, 'Unauthorized request (wrong or missing secret/token)');
    }
  }

  protected async dispatch(req: JsonObject, transaction: string, verb: string, sessionId: number, handleId: number): Promise<JsonObject> {
    if (sessionId === 0 && handleId === 0) return this.globalRequest(req, transaction, verb);
    if (sessionId === 0) throw new JanusError(JanusErrorCode.SESSION_NOT_FOUND, 'Invalid session');
    const session = this.options.registry.get(sessionId);
    if (!session || !session.live) throw new JanusError(JanusErrorCode.SESSION_NOT_FOUND, `No such session ${sessionId}`);
    if (handleId === 0) return this.sessionRequest(req, transaction, verb, session);
    const handle = session.handles.get(handleId);
    if (!handle) throw new JanusError(JanusErrorCode.HANDLE_NOT_FOUND, `No such handle ${handleId} in session ${sessionId}`);
    switch (verb) {
      case 'handle_info': {
        const pluginOnly = field(req, 'plugin_only');
        if (pluginOnly !== undefined && pluginOnly !== null && typeof pluginOnly !== 'boolean') {
          throw new JanusError(JanusErrorCode.INVALID_ELEMENT_TYPE, 'Invalid element type (plugin_only should be a boolean)');
        }
        const info = handle.describe(pluginOnly === true);
        if (pluginOnly !== true) {
          info['session_last_activity'] = Math.round(session.lastActivity);
          info['session_timeout'] = session.timeoutOverride >= 0 ? session.timeoutOverride : this.options.registry.sessionTimeout;
          info['session_transport'] = session.transportGone ? null : session.sink.description;
        }
        return envelope('success', session.id, transaction, { handle_id: handle.id, info });
      }
      case 'detach_handle': {
        const failure = handle.end('admin detach');
        if (failure !== null) throw new JanusError(JanusErrorCode.PLUGIN_DETACH, `Couldn't detach from plugin: ${failure}`);
        return envelope('success', session.id, transaction, { handle_id: handle.id });
      }
      case 'hangup_webrtc':
        handle.hangup('Admin API');
        return envelope('success', session.id, transaction, { handle_id: handle.id });
      default:
        throw unhandled(verb);
    }
  }

  private sessionRequest(req: JsonObject, transaction: string, verb: string, session: Session): JsonObject {
    switch (verb) {
      case 'list_handles':
        return envelope('success', session.id, transaction, { handles: [...session.handles.keys()] });
      case 'destroy_session':
        session.end('admin-destroy');
        return envelope('success', session.id, transaction);
      case 'set_session_timeout': {
        const timeout = requireInteger(req, 'timeout', -1);
        session.timeoutOverride = timeout;
        return envelope('success', session.id, transaction, { timeout });
      }
      default:
        throw unhandled(verb);
    }
  }

  private async globalRequest(req: JsonObject, transaction: string, verb: string): Promise<JsonObject> {
    const { registry, auth, plugins } = this.options;
    switch (verb) {
      case 'info':
        return { janus: 'server_info', transaction, ...this.options.serverInfo() };
      case 'ping':
        return envelope('pong', 0, transaction);
      case 'get_status':
        return envelope('success', 0, transaction, {
          status: {
            token_auth: auth.tokens.enabled,
            session_timeout: registry.sessionTimeout,
            reclaim_session_timeout: registry.reclaimSessionTimeout,
            candidates_timeout: this.options.candidatesTimeout,
            log_level: this.options.logLevel.get(),
            log_timestamps: true,
            log_colors: false,
            locking_debug: false,
            refcount_debug: false,
            accepting_new_sessions: registry.acceptingNewSessions,
          },
        });
      case 'ferry_status':
        return envelope('success', 0, transaction, { status: { ...this.options.status() } });
      case 'list_sessions':
        return envelope('success', 0, transaction, { sessions: registry.ids() });
      case 'set_session_timeout': {
        const timeout = requireInteger(req, 'timeout', 0);
        registry.sessionTimeout = timeout;
        return envelope('success', 0, transaction, { timeout });
      }
      case 'set_log_level': {
        const level = requireInteger(req, 'level', 0, 7);
        this.options.logLevel.set(level);
        return envelope('success', 0, transaction, { level });
      }
      case 'accept_new_sessions': {
        const accept = field(req, 'accept');
        if (accept === undefined || accept === null) throw new JanusError(JanusErrorCode.MISSING_MANDATORY_ELEMENT, 'Missing mandatory element (accept)');
        if (typeof accept !== 'boolean') throw new JanusError(JanusErrorCode.INVALID_ELEMENT_TYPE, 'Invalid element type (accept should be a boolean)');
        registry.acceptingNewSessions = accept;
        return envelope('success', 0, transaction, { accept });
      }
      case 'message_plugin': {
        const name = requireString(req, 'plugin', { nonEmpty: true });
        const request = field(req, 'request');
        if (request === undefined || request === null) throw new JanusError(JanusErrorCode.MISSING_MANDATORY_ELEMENT, 'Missing mandatory element (request)');
        if (!isJsonObject(request)) throw new JanusError(JanusErrorCode.INVALID_ELEMENT_TYPE, 'Invalid element type (request should be an object)');
        const plugin = plugins.get(name);
        if (!plugin) throw new JanusError(JanusErrorCode.PLUGIN_NOT_FOUND, `No such plugin '${name.slice(0, 128)}'`);
        if (!plugin.handleAdminMessage) throw new JanusError(JanusErrorCode.PLUGIN_MESSAGE, "Plugin doesn't support Admin API messages");
        let response: JsonObject;
        try {
          response = await plugin.handleAdminMessage(request);
        } catch (err) {
          throw new JanusError(JanusErrorCode.PLUGIN_MESSAGE, `Plugin error: ${err instanceof Error ? err.message : String(err)}`);
        }
        return envelope('success', 0, transaction, { response });
      }
      case 'add_token': {
        const token = requireString(req, 'token', { nonEmpty: true });
        const requested = optionalPluginList(req, plugins) ?? plugins.names();
        return envelope('success', 0, transaction, { data: { plugins: auth.tokens.add(token, requested) } });
      }
      case 'list_tokens':
        return envelope('success', 0, transaction, { data: { tokens: auth.tokens.list() } });
      case 'allow_token':
      case 'disallow_token': {
        const token = requireString(req, 'token', { nonEmpty: true });
        const list = optionalPluginList(req, plugins);
        if (list === null) throw new JanusError(JanusErrorCode.MISSING_MANDATORY_ELEMENT, 'Missing mandatory element (plugins)');
        const allowed = verb === 'allow_token' ? auth.tokens.allow(token, list) : auth.tokens.disallow(token, list);
        return envelope('success', 0, transaction, { data: { plugins: allowed } });
      }
      case 'remove_token':
        auth.tokens.remove(requireString(req, 'token', { nonEmpty: true }));
        return envelope('success', 0, transaction);
      default:
        throw unhandled(verb);
    }
  }
}

/**
 * janus.c janus_process_incoming_admin_request ends every level's chain of
 * verbs with 457 "Unhandled request 'x' at this path": the Admin API has no
 * 453, an unknown verb and a verb of another level get the same answer.
 */
function unhandled(verb: string): JanusError {
  return new JanusError(JanusErrorCode.INVALID_REQUEST_PATH, `Unhandled request '${verb.slice(0, 64)}' at this path`);
}


/** `plugins` of the token requests: absent → null; every name must be a registered plugin (460). */
function optionalPluginList(obj: JsonObject, plugins: PluginRegistry): string[] | null {
  const value = field(obj, 'plugins');
  if (value === undefined || value === null) return null;
  if (!Array.isArray(value) || !value.every((p) => typeof p === 'string')) {
    throw new JanusError(JanusErrorCode.INVALID_ELEMENT_TYPE, 'Invalid element type (plugins should be an array of strings)');
  }
  const names = value as string[];
  for (const name of names) {
    if (!plugins.get(name)) throw new JanusError(JanusErrorCode.PLUGIN_NOT_FOUND, `No such plugin '${name.slice(0, 128)}'`);
  }
  return names;
}
