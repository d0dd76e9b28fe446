/**
 * Composition root: builds the registry, auth, plugins, APIs, transports
 * and metrics from one configuration; `start()` listens, `stop()` ends every
 * session through the same path as any other ending and closes everything.
 */
import type { Logger } from 'pino';
import { SystemClock, type Clock, type Timer } from './time/Clock.js';
import type { JsonObject } from './core/Json.js';
import type { MediaProvider } from './core/Media.js';
import type { MediaThreadStatus } from './core/Status.js';
import type { MediaServices } from './media/Routing.js';
import { SessionRegistry } from './core/SessionRegistry.js';
import { Quotas } from './core/Quotas.js';
import { RequestAuth } from './core/auth/RequestAuth.js';
import { TokenAuth } from './core/auth/TokenAuth.js';
import type { FerryConfig } from './config/Config.js';
import { createLogger, janusLevelFromPino, pinoLevelFromJanus } from './log/logger.js';
import { createEventBus } from './events/createEventBus.js';
import type { EventBus } from './events/EventBus.js';
import { CoreSubtype, EventType } from './events/JanusEvents.js';
import { Metrics } from './metrics/Metrics.js';
import type { Plugin } from './core/Plugin.js';
import { PluginRegistry } from './core/PluginRegistry.js';
import { EchoTestPlugin } from './plugins/echotest/EchoTestPlugin.js';
import { AdminApi, type FerryStatus } from './transports/AdminApi.js';
import { registerDemoPages, type DemoPagesOptions } from './demos/DemoPages.js';
import { HttpTransport } from './transports/HttpTransport.js';
import type { JanusApi } from './transports/ApiBase.js';
import { ClientApi } from './transports/ClientApi.js';
import { JANUS_ADMIN_WS_PROTOCOL, JANUS_WS_PROTOCOL, WebSocketTransport } from './transports/WebSocketTransport.js';
import { WhipWhep } from './transports/WhipWhep.js';

export const FERRY_VERSION = '0.1.0';
/** The Janus API level ferry speaks (janus-gateway 1.4.x). */
const JANUS_API_VERSION = 1400;
const JANUS_API_VERSION_STRING = '1.4.0';
/** Janus's core `update` event period (sessions, handles, PeerConnections). */
const EVENTS_UPDATE_INTERVAL_MS = 15_000;
/** At shutdown, event handlers get this long to deliver what they hold (the shutdown event last). */
const EVENTS_CLOSE_GRACE_MS = 2000;

/**
 * Resource counts owned by the media side (WebRTC transport, native engine,
 * port pool). The media issue wires real providers with `setResourceCounts`;
 * until then the Admin API reports null and metrics omit the gauge.
 */
export interface ResourceCounts {
  peerConnections: () => number;
  nativeEndpoints: () => number | null;
  portLeases: () => number | null;
  /** Each port pool: its range, leased/free counts and who holds each lease. */
  portPools: () => PortPoolStatus[];
  /** Media engine counters summed over endpoints (packets, drops by reason); null without an engine. */
  engineCounters: () => Record<string, number> | null;
  /** Each media thread: load, packets, drops, the queue from other threads. */
  mediaThreads: () => MediaThreadStatus[];
  /** Data channels over every PeerConnection: associations and channels now, messages, drops, endings. */
  dataChannels: () => JsonObject | null;
  /** This node's view of its cluster (nodes, rooms owned, cascades); null when it stands alone. */
  cluster: () => JsonObject | null;
  /** The cluster figures /metrics exports; null when it stands alone. */
  clusterGauges: () => Record<string, number> | null;
}

export interface PortPoolStatus {
  name: string;
  range: string;
  leased: number;
  free: number;
  leases: { port: number; owner: string; since: number }[];
}

export interface GatewayOptions {
  config: FerryConfig;
  clock?: Clock;
  logger?: Logger;
  /** Plugins in addition to the built-in echotest. */
  plugins?: Plugin[];
  media?: MediaProvider;
  /** Media routing for plugins (engine operations, plain RTP legs). */
  services?: MediaServices;
  resources?: Partial<ResourceCounts>;
  /** Unix seconds for signed-token expiry (tests). */
  nowSeconds?: () => number;
  /** Per-client quotas, when the media side (built first) shares them; else built from config.quotas. */
  quotas?: Quotas;
  /** Called after `stop()` ended the sessions: close the media engine here. */
  onStop?: () => Promise<void> | void;
  /** Janus event handlers (the media side, built first, shares them); else built from config.events. */
  events?: EventBus;
}

export interface GatewayAddresses {
  http?: { host: string; port: number };
  websocket?: { host: string; port: number };
  adminHttp?: { host: string; port: number };
  adminWebsocket?: { host: string; port: number };
}

export class Gateway {
  readonly config: FerryConfig;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly registry: SessionRegistry;
  readonly quotas: Quotas;
  readonly plugins = new PluginRegistry();
  readonly auth: RequestAuth;
  readonly metrics: Metrics;
  readonly clientApi: ClientApi;
  readonly admin: AdminApi;
  /** WHIP/WHEP resources on the Janus HTTP listener (null when off). */
  whipWhep: WhipWhep | null = null;
  readonly events: EventBus;
  private eventsUpdate: Timer | null = null;
  private resources: ResourceCounts;
  private readonly transports: Array<HttpTransport | WebSocketTransport> = [];
  private state: 'new' | 'started' | 'stopping' | 'stopped' = 'new';
  private stopPromise: Promise<void> | null = null;
  private readonly onStop: (() => Promise<void> | void) | undefined;

  constructor(options: GatewayOptions) {
    const config = options.config;
    this.config = config;
    this.clock = options.clock ?? new SystemClock();
    this.logger = options.logger ?? createLogger(config.log.level);
    this.onStop = options.onStop;
    this.events = options.events ?? createEventBus(config, this.logger);
    this.plugins.register(new EchoTestPlugin(options.services?.router ?? null, options.services?.recorder ?? null));
    for (const p of options.plugins ?? []) this.plugins.register(p);

    this.metrics = new Metrics({
      sessions: () => this.registry.sessionCount,
      handles: () => this.registry.handleCount,
      longPollWaiters: () => this.registry.longPollWaiterCount,
      queuedEvents: () => this.registry.queuedEventCount,
      peerConnections: () => this.resources.peerConnections(),
      nativeEndpoints: () => this.resources.nativeEndpoints(),
      portLeases: () => this.resources.portLeases(),
      freePorts: () => {
        const pools = this.resources.portPools();
        return pools.length ? pools.reduce((n, p) => n + p.free, 0) : null;
      },
      mediaThreads: () => this.resources.mediaThreads(),
      eventHandlers: () => this.events.status(),
      dataChannels: () => this.resources.dataChannels(),
      cluster: () => this.resources.clusterGauges(),
    });
    this.quotas = options.quotas ?? new Quotas(config.quotas, this.clock);
    this.quotas.onRefusal = (limit) => this.metrics.quotaRefused(limit);
    this.registry = new SessionRegistry({
      quotas: this.quotas,
      clock: this.clock,
      logger: this.logger,
      media: options.media ?? null,
      sessionTimeout: config.general.session_timeout,
      reclaimSessionTimeout: config.general.reclaim_session_timeout,
      maxSessions: config.limits.max_sessions,
      maxHandlesPerSession: config.limits.max_handles_per_session,
      maxQueuedEvents: config.limits.max_queued_events,
      maxPendingCandidates: config.limits.max_pending_candidates,
      onSessionEnded: (_session, reason) => this.metrics.sessionEnded(reason),
      onEventDropped: () => this.metrics.eventDropped(),
      events: this.events,
    });
    this.registry.acceptingNewSessions = config.general.accept_new_sessions;
    // Default: PeerConnections are the handles the core knows have media; engine and ports report null until wired.
    this.resources = {
      peerConnections: () => this.registry.mediaCount,
      nativeEndpoints: () => null,
      portLeases: () => null,
      portPools: () => [],
      engineCounters: () => null,
      mediaThreads: () => [],
      dataChannels: () => null,
      cluster: () => null,
      clusterGauges: () => null,
    };
    if (options.resources) this.setResourceCounts(options.resources);

    const tokens = new TokenAuth({
      enabled: config.auth.token_auth,
      secret: config.auth.token_auth_secret,
      ...(options.nowSeconds ? { nowSeconds: options.nowSeconds } : {}),
    });
    this.auth = new RequestAuth(config.auth.api_secret, tokens, config.auth.admin_secret);

    // What the client and Admin APIs both stand on.
    const shared = {
      registry: this.registry,
      plugins: this.plugins,
      auth: this.auth,
      logger: this.logger,
      maxJsonDepth: config.limits.json_depth,
      serverInfo: () => this.serverInfo(),
    };
    this.clientApi = new ClientApi({
      ...shared,
      onRequest: (verb, code) => this.metrics.request('janus', verb, code),
    });
    this.admin = new AdminApi({
      ...shared,
      status: () => this.status(),
      logLevel: {
        get: () => janusLevelFromPino(this.logger.level),
        set: (level) => { this.logger.level = pinoLevelFromJanus(level); },
      },
      candidatesTimeout: config.general.candidates_timeout,
      onRequest: (verb, code) => this.metrics.request('admin', verb, code),
    });
  }

  /** Lets the media side report its resources (peer connections, native endpoints, port leases). */
  setResourceCounts(counts: Partial<ResourceCounts>): void {
    this.resources = { ...this.resources, ...counts };
  }

  /** Derived counts, read by Admin `ferry_status` and by tests. */
  status(): FerryStatus {
    const dataChannels = this.resources.dataChannels();
    const cluster = this.resources.cluster();
    return {
      sessions: this.registry.sessionCount,
      handles: this.registry.handleCount,
      peer_connections: this.resources.peerConnections(),
      native_endpoints: this.resources.nativeEndpoints(),
      port_leases: this.resources.portLeases(),
      port_pools: this.resources.portPools(),
      engine: this.resources.engineCounters(),
      media_threads: this.resources.mediaThreads(),
      // Only with a WebRTC layer, like the engine's figures it sits beside.
      ...(dataChannels ? { data_channels: dataChannels } : {}),
      long_poll_waiters: this.registry.longPollWaiterCount,
      queued_events: this.registry.queuedEventCount,
      quotas: this.quotas.status(),
      // Only with handlers configured: a gateway without them reports as before.
      ...(this.events.handlerCount > 0 ? { event_handlers: this.events.status() } : {}),
      // Only in a cluster (README "Cluster").
      ...(cluster ? { cluster } : {}),
    };
  }

  serverInfo(): JsonObject {
    const c = this.config;
    return {
      name: 'ferry',
      version: JANUS_API_VERSION,
      version_string: JANUS_API_VERSION_STRING,
      author: 'ferry',
      'commit-hash': 'not-available',
      'compile-time': 'not-available',
      'ferry-version': FERRY_VERSION,
      'log-to-stdout': true,
      'log-to-file': false,
      data_channels: true,
      'accepting-new-sessions': this.registry.acceptingNewSessions,
      'session-timeout': this.registry.sessionTimeout,
      'reclaim-session-timeout': c.general.reclaim_session_timeout,
      'candidates-timeout': c.general.candidates_timeout,
      'server-name': c.general.server_name,
      'local-ip': c.http.bind,
      ipv6: false,
      'ice-lite': true,
      'ice-tcp': false,
      'full-trickle': false,
      api_secret: this.auth.apiSecretEnabled,
      auth_token: this.auth.tokens.enabled,
      event_handlers: this.events.handlerCount > 0,
      opaqueid_in_api: false,
      dependencies: { fastify: 'bundled', pino: 'bundled' },
      transports: {
        ...(c.http.enabled
          ? { 'janus.transport.http': { name: 'JANUS REST (HTTP/HTTPS) transport plugin', author: 'ferry', description: 'Janus API over HTTP with long polls', version_string: FERRY_VERSION, version: 1 } }
          : {}),
        ...(c.websocket.enabled
          ? { 'janus.transport.websockets': { name: 'JANUS WebSockets transport plugin', author: 'ferry', description: 'Janus API over WebSockets', version_string: FERRY_VERSION, version: 1 } }
          : {}),
      },
      events: Object.fromEntries(
        this.events.status().map((h) => [
          `ferry.eventhandler.${h.handler}`,
          { name: `ferry ${h.handler} event handler`, author: 'ferry', description: `Janus events to ${h.target}`, version_string: FERRY_VERSION, version: 1 },
        ]),
      ),
      loggers: {},
      plugins: this.plugins.describe(),
    };
  }

  private demoPagesOptions(addresses: GatewayAddresses): DemoPagesOptions {
    const c = this.config;
    const apiAtRoot = c.http.base_path.replace(/\/+$/, '') === '';
    return {
      path: c.demos.path,
      rootRedirect: !apiAtRoot && c.demos.path.replace(/\/+$/, '') !== '',
      client: () => ({
        janusPath: c.http.base_path,
        websocketPort: addresses.websocket?.port ?? null,
        admin: addresses.adminHttp ? { port: addresses.adminHttp.port, path: c.admin_http.base_path } : null,
      }),
    };
  }

  async start(): Promise<GatewayAddresses> {
    if (this.state !== 'new') throw new Error(`gateway cannot start from state ${this.state}`);
    this.state = 'started';
    const c = this.config;
    const metricsEndpoint = c.metrics.enabled
      ? { path: c.metrics.path, contentType: () => this.metrics.contentType, text: () => this.metrics.text() }
      : undefined;
    const addresses: GatewayAddresses = {};
    // What the Janus and the Admin HTTP listeners share; both answer CORS like the Janus API.
    const httpListener = (name: string, api: JanusApi, listener: { base_path: string; bind: string; port: number }) => ({
      name, api, basePath: listener.base_path, bind: listener.bind, port: listener.port,
      bodyLimit: c.limits.body_bytes, allowOrigin: c.http.allow_origin, logger: this.logger,
    });
    try {
      if (c.http.enabled) {
        const t = new HttpTransport({
          ...httpListener('janus.http', this.clientApi, c.http),
          longPoll: { registry: this.registry, auth: this.auth, keepaliveMs: c.http.long_poll_keepalive * 1000, maxEvents: c.limits.max_queued_events },
          ...(metricsEndpoint && !c.admin_http.enabled ? { metrics: metricsEndpoint } : {}),
        });
        this.transports.push(t);
        if (c.demos.enabled) await registerDemoPages(t.server, this.demoPagesOptions(addresses));
        if (c.whip.enabled) {
          this.whipWhep = new WhipWhep({ registry: this.registry, plugins: this.plugins, auth: this.auth, logger: this.logger, whipPath: c.whip.path, whepPath: c.whip.whep_path });
          this.whipWhep.register(t.server);
        }
        addresses.http = await t.listen();
      }
      if (c.websocket.enabled) {
        const t = new WebSocketTransport({
          name: 'janus.websocket', protocol: JANUS_WS_PROTOCOL, api: this.clientApi, bind: c.websocket.bind, port: c.websocket.port,
          messageLimit: c.limits.body_bytes, logger: this.logger, registry: this.registry, events: this.events,
        });
        this.transports.push(t);
        addresses.websocket = await t.listen();
      }
      if (c.admin_http.enabled) {
        const t = new HttpTransport({
          ...httpListener('admin.http', this.admin, c.admin_http),
          ...(metricsEndpoint ? { metrics: metricsEndpoint } : {}),
        });
        this.transports.push(t);
        addresses.adminHttp = await t.listen();
      }
      if (c.admin_websocket.enabled) {
        const t = new WebSocketTransport({
          name: 'admin.websocket', protocol: JANUS_ADMIN_WS_PROTOCOL, api: this.admin, bind: c.admin_websocket.bind,
          port: c.admin_websocket.port, messageLimit: c.limits.body_bytes, logger: this.logger, events: this.events,
        });
        this.transports.push(t);
        addresses.adminWebsocket = await t.listen();
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.registry.start();
    this.startEvents();
    return addresses;
  }

  /** Event handlers connect; the core tells them it started, then every 15 s how busy it is. */
  private startEvents(): void {
    this.events.start();
    if (!this.events.wants(EventType.core)) return;
    this.events.core(CoreSubtype.startup, { status: 'started', info: this.serverInfo() });
    this.eventsUpdate = this.clock.setInterval(() => {
      this.events.core(CoreSubtype.startup, {
        status: 'update',
        info: {
          sessions: this.registry.sessionCount,
          handles: this.registry.handleCount,
          peerconnections: this.resources.peerConnections(),
          'stats-period': this.config.events.stats_period,
        },
      });
    }, EVENTS_UPDATE_INTERVAL_MS);
  }

  /**
   * Shutdown: refuse new sessions, end every session through `Session.end`
   * (answering pending long polls), close the transports, the plugins and the
   * media engine. Idempotent.
   */
  stop(): Promise<void> {
    if (!this.stopPromise) this.stopPromise = this.doStop();
    return this.stopPromise;
  }

  private async doStop(): Promise<void> {
    this.state = 'stopping';
    this.registry.acceptingNewSessions = false;
    this.registry.stopWatchdog();
    this.whipWhep?.close();
    this.registry.endAll('shutdown');
    this.eventsUpdate?.cancel();
    this.eventsUpdate = null;
    this.events.core(CoreSubtype.shutdown, { status: 'shutdown' });
    await Promise.allSettled(this.transports.map((t) => t.close()));
    // Sockets closing during transport shutdown may have raced a last request: end anything left.
    this.registry.endAll('shutdown');
    try {
      this.plugins.destroyAll();
    } catch (err) {
      this.logger.error({ err }, 'plugin destroy failed');
    }
    try {
      await this.onStop?.();
    } catch (err) {
      this.logger.error({ err }, 'media shutdown failed');
    }
    await this.events.close(EVENTS_CLOSE_GRACE_MS);
    this.state = 'stopped';
    this.logger.info('gateway stopped');
  }
}
