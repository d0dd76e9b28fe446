/**
 * A handle: one client's attachment to one plugin inside a session. Owns the
 * plugin's per-handle state and (through the media seam) its PeerConnection.
 * Its lifecycle is the explicit table below; `end()` is the only way out and
 * is idempotent.
 */
import type { Logger } from 'pino';
import { EventType } from '../events/JanusEvents.js';
import { NO_EVENTS, type EventBus, type EventSource } from '../events/EventBus.js';
import type { Clock } from '../time/Clock.js';
import { JanusError, JanusErrorCode, isJanusError } from './JanusError.js';
import type { JsonObject } from './Json.js';
import type { HandleMedia, Jsep, MediaEvents, MediaProvider, TrickleCandidate } from './Media.js';
import type { Plugin, PluginContext, PluginHandle, PluginReply } from './Plugin.js';

/**
 * - idle: attached, no media negotiated (or hung up).
 * - negotiating: a jsep went one way or the other; PeerConnection not up yet.
 * - connected: ICE + DTLS done (`webrtcup` sent).
 * - detached: terminal; every further input is ignored.
 */
export type HandleState = 'idle' | 'negotiating' | 'connected' | 'detached';
export type HandleInput = 'remoteJsep' | 'localJsep' | 'webrtcUp' | 'hangup' | 'detach';

export const HANDLE_TRANSITIONS: Readonly<Record<HandleState, Readonly<Partial<Record<HandleInput, HandleState>>>>> = {
  idle: { remoteJsep: 'negotiating', localJsep: 'negotiating', hangup: 'idle', detach: 'detached' },
  negotiating: { remoteJsep: 'negotiating', localJsep: 'negotiating', webrtcUp: 'connected', hangup: 'idle', detach: 'detached' },
  connected: { remoteJsep: 'connected', localJsep: 'connected', hangup: 'idle', detach: 'detached' },
  detached: {},
};

/** What a handle needs from its session (kept narrow so Handle does not depend on Session). */
export interface HandleOwner {
  readonly id: number;
  readonly live: boolean;
  deliver(message: JsonObject): void;
  removeHandle(handle: Handle): void;
}

export interface HandleOptions {
  id: number;
  owner: HandleOwner;
  plugin: Plugin;
  opaqueId: string | null;
  token: string | null;
  clock: Clock;
  logger: Logger;
  media: MediaProvider | null;
  /** Trickle candidates kept while no PeerConnection exists yet (Janus queues them too). */
  maxPendingCandidates: number;
  /** Where the handle's Janus events go (attach, jsep, webrtc, media, plugin); default: nowhere. */
  events?: EventBus;
}

export class Handle {
  readonly id: number;
  readonly plugin: Plugin;
  readonly opaqueId: string | null;
  readonly token: string | null;
  readonly created: number;
  private currentState: HandleState = 'idle';
  private pluginHandle: PluginHandle;
  private mediaBinding: HandleMedia | null = null;
  private pendingCandidates: TrickleCandidate[] = [];
  /** A local offer was sent to the client and its answer has not arrived (else an answer is 469). */
  private localOfferPending = false;
  /**
   * The transaction of the message whose jsep was applied to the PeerConnection, until the
   * plugin answers it with a jsep: a plugin error for it is a failed negotiation.
   */
  private negotiatingTransaction: string | null = null;
  /** Where the plugin says this handle's media belongs (engine placement). */
  private placementGroup: string | undefined;
  /** Serialises pushed events so a jsep merge never reorders them. */
  private outbox: Promise<void> = Promise.resolve();
  private readonly owner: HandleOwner;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly mediaProvider: MediaProvider | null;
  private readonly maxPendingCandidates: number;
  private readonly events: EventBus;
  /** The ids this handle's events carry. */
  private readonly eventSource: EventSource & { handleId: number };

  /** Attaches to the plugin; a plugin that throws gives 461 and no handle exists. */
  constructor(options: HandleOptions) {
    this.id = options.id;
    this.owner = options.owner;
    this.plugin = options.plugin;
    this.opaqueId = options.opaqueId;
    this.token = options.token;
    this.clock = options.clock;
    this.created = options.clock.now();
    this.logger = options.logger.child({ handle: options.id });
    this.mediaProvider = options.media;
    this.maxPendingCandidates = options.maxPendingCandidates;
    this.events = options.events ?? NO_EVENTS;
    this.eventSource = { sessionId: options.owner.id, handleId: options.id, opaqueId: options.opaqueId };
    try {
      this.pluginHandle = this.plugin.attach(this.makeContext());
    } catch (err) {
      throw new JanusError(JanusErrorCode.PLUGIN_ATTACH, `Couldn't attach to plugin: ${errorText(err)}`);
    }
    this.events.handle(this.eventSource, 'attached', this.plugin.info.package, this.token);
  }

  get state(): HandleState {
    return this.currentState;
  }

  get media(): HandleMedia | null {
    return this.mediaBinding;
  }

  get sessionId(): number {
    return this.owner.id;
  }

  /** Applies an input to the state table; inputs the table lacks are ignored (and say so). */
  private apply(input: HandleInput): boolean {
    const next = HANDLE_TRANSITIONS[this.currentState][input];
    if (next === undefined) {
      this.logger.debug({ state: this.currentState, input }, 'handle input ignored in this state');
      return false;
    }
    this.currentState = next;
    return true;
  }

  /** Janus `message`: optional jsep first (validated by the client API), then the plugin. */
  async message(transaction: string, body: JsonObject, jsep: Jsep | undefined): Promise<PluginReply> {
    if (this.currentState === 'detached') throw new JanusError(JanusErrorCode.HANDLE_NOT_FOUND, `No such handle ${this.id}`);
    this.placementGroup = this.pluginHandle.placementGroup?.(body) ?? this.placementGroup;
    if (jsep) {
      if (jsep.type === 'answer' && !this.localOfferPending) {
        throw new JanusError(JanusErrorCode.UNEXPECTED_ANSWER, 'Unexpected ANSWER (did we offer?)');
      }
      const media = this.ensureMedia();
      if (media) {
        try {
          await media.setRemoteDescription(jsep);
        } catch (err) {
          const error = isJanusError(err) ? err : new JanusError(JanusErrorCode.JSEP_INVALID_SDP, `JSEP error: ${errorText(err)}`);
          this.negotiationFailed(media, error.message);
          throw error;
        }
        if (this.pendingCandidates.length > 0) media.addRemoteCandidates(this.pendingCandidates.splice(0));
        this.negotiatingTransaction = transaction;
      }
      if (jsep.type === 'answer') this.localOfferPending = false;
      this.events.jsep(this.eventSource, 'remote', jsep);
      this.apply('remoteJsep');
    }
    const media = this.mediaBinding;
    let reply: PluginReply;
    try {
      reply = await this.pluginHandle.handleMessage(jsep ? { transaction, body, jsep } : { transaction, body });
    } catch (err) {
      const error = new JanusError(JanusErrorCode.PLUGIN_MESSAGE, `Plugin error: ${errorText(err)}`);
      if (jsep && media) this.negotiationFailed(media, error.message);
      throw error;
    }
    const refused =
      !isPluginReply(reply) ? 'Plugin returned an invalid reply'
      : reply.kind === 'error' ? reply.reason
      : null;
    if (refused !== null) {
      if (jsep && media) this.negotiationFailed(media, refused);
      throw new JanusError(JanusErrorCode.PLUGIN_MESSAGE, refused);
    }
    if (jsep && media && reply.kind === 'ok' && isPluginError(reply.data)) this.negotiationFailed(media, pluginErrorText(reply.data));
    return reply;
  }

  /**
   * A negotiation failed (its jsep refused, or the plugin answered it with an error): a
   * PeerConnection that never came up goes at once, through the same ending as `hangup`, so no
   * lease, endpoint or PeerConnection outlives the failure. A connected one stays: a refused
   * re-offer changed nothing in it (the PeerConnection fails itself when it did), and whether
   * a live call survives its plugin's error is the plugin's decision (SIP keeps its call).
   */
  private negotiationFailed(media: HandleMedia, reason: string): void {
    if (this.mediaBinding !== media || this.currentState === 'connected' || this.currentState === 'detached') return;
    this.hangup(`Negotiation failed: ${reason}`);
  }

  /** Janus `trickle`: to the PeerConnection, or queued until one exists. */
  trickle(candidates: TrickleCandidate[]): void {
    if (this.currentState === 'detached') return;
    if (this.mediaBinding) {
      this.mediaBinding.addRemoteCandidates(candidates);
      return;
    }
    for (const c of candidates) {
      if (this.pendingCandidates.length >= this.maxPendingCandidates) break;
      this.pendingCandidates.push(c);
    }
  }

  /**
   * Hangs up the PeerConnection (Janus `hangup` request, `close_pc`, media
   * failure). Always tells the plugin, even with no SDP ever exchanged, so no
   * plugin state can stay stuck waiting for media (lessons.md §1). Idempotent.
   */
  hangup(reason: string): void {
    if (this.currentState === 'detached') return;
    const hadMedia = this.currentState !== 'idle';
    this.apply('hangup');
    this.releaseMedia(reason);
    if (hadMedia) {
      this.owner.deliver({ janus: 'hangup', session_id: this.owner.id, sender: this.id, reason });
      this.events.peerConnection(this.eventSource, 'hangup', reason);
    }
    this.callPlugin('hangupMedia', () => this.pluginHandle.hangupMedia(reason));
  }

  /**
   * The one ending of a handle (detach request, Admin detach, plugin
   * `end_session`, session ending). Releases media, destroys the plugin state,
   * leaves the session, and tells the client `detached` if it can still hear.
   * Returns the plugin's detach failure, if any (the handle is gone regardless).
   */
  end(reason: string): string | null {
    if (this.currentState === 'detached') return null;
    const hadMedia = this.currentState !== 'idle';
    this.apply('detach');
    this.releaseMedia(reason);
    this.pendingCandidates = [];
    if (hadMedia) {
      this.events.peerConnection(this.eventSource, 'hangup', reason);
      this.callPlugin('hangupMedia', () => this.pluginHandle.hangupMedia(reason));
    }
    const detachError = this.callPlugin('destroy', () => this.pluginHandle.destroy(reason));
    this.owner.removeHandle(this);
    this.events.handle(this.eventSource, 'detached', this.plugin.info.package, this.token);
    if (this.owner.live) {
      // After the reply to the request that caused it, as in Janus (the event is sent when the handle is freed).
      const owner = this.owner;
      const event = { janus: 'detached', session_id: owner.id, sender: this.id };
      setImmediate(() => owner.deliver(event));
    }
    return detachError;
  }

  /** Admin `handle_info`. */
  describe(pluginOnly: boolean): JsonObject {
    let pluginSpecific: JsonObject;
    try {
      pluginSpecific = this.pluginHandle.query();
    } catch (err) {
      pluginSpecific = { error: errorText(err) };
    }
    if (pluginOnly) return { plugin: this.plugin.info.package, plugin_specific: pluginSpecific };
    return {
      session_id: this.owner.id,
      handle_id: this.id,
      opaque_id: this.opaqueId,
      token: this.token,
      created: Math.round(this.created),
      current_time: Math.round(this.clock.now()),
      plugin: this.plugin.info.package,
      plugin_specific: pluginSpecific,
      state: this.currentState,
      flags: {
        'got-offer': this.currentState !== 'idle',
        negotiated: this.currentState === 'connected',
        ready: this.currentState === 'connected',
        'local-offer-pending': this.localOfferPending,
      },
      'pending-trickles': this.pendingCandidates.length,
      webrtc: this.mediaBinding ? this.mediaBinding.describe() : null,
    };
  }

  private ensureMedia(): HandleMedia | null {
    if (this.mediaBinding || !this.mediaProvider) return this.mediaBinding;
    const owner = { sessionId: this.owner.id, handleId: this.id, ...(this.placementGroup !== undefined ? { placementGroup: this.placementGroup } : {}) };
    const media = this.mediaProvider.open(owner, this.mediaEvents(() => media));
    this.mediaBinding = media;
    return media;
  }

  private releaseMedia(reason: string): void {
    const media = this.mediaBinding;
    this.mediaBinding = null;
    this.localOfferPending = false;
    this.negotiatingTransaction = null;
    if (!media) return;
    try {
      media.close(reason);
    } catch (err) {
      this.logger.error({ err }, 'media close failed');
    }
  }

  /** Media callbacks; ones from a PeerConnection that was already replaced or closed are ignored. */
  private mediaEvents(self: () => HandleMedia): MediaEvents {
    const current = () => this.mediaBinding !== null && this.mediaBinding === self();
    const base = () => ({ session_id: this.owner.id, sender: this.id });
    const events = this.events;
    const source = this.eventSource;
    const media: MediaEvents = {
      webrtcUp: () => {
        if (!current() || !this.apply('webrtcUp')) return;
        // The plugin routes media first, then the client hears "webrtcup" (Janus's order too):
        // a client that starts sending on webrtcup finds the route made, on every media thread.
        this.callPlugin('setupMedia', () => this.pluginHandle.setupMedia());
        this.owner.deliver({ janus: 'webrtcup', ...base() });
        events.peerConnection(source, 'webrtcup');
      },
      mediaState: (info) => {
        if (!current()) return;
        this.owner.deliver({ janus: 'media', ...base(), ...info });
        events.mediaState(source, info);
      },
      slowLink: (info) => {
        if (!current()) return;
        this.owner.deliver({ janus: 'slowlink', ...base(), ...info });
        events.slowLink(source, info);
      },
      localCandidate: (candidate) => {
        if (current()) this.owner.deliver({ janus: 'trickle', ...base(), candidate: candidate ?? { completed: true } });
      },
      closed: (reason) => {
        if (current()) this.hangup(reason);
      },
      data: (message) => {
        const plugin = this.pluginHandle;
        if (current() && plugin.incomingData) this.callPlugin('incomingData', () => plugin.incomingData!(message));
      },
      dataReady: () => {
        const plugin = this.pluginHandle;
        if (current() && plugin.dataReady) this.callPlugin('dataReady', () => plugin.dataReady!());
      },
    };
    // Only when a handler wants them: without these the media layer builds nothing for them.
    if (events.wants(EventType.webrtc)) {
      media.transportEvent = (e) => {
        if (current()) events.webrtcTransport(source, e);
      };
    }
    if (events.wants(EventType.media)) {
      media.mediaStats = (stats) => {
        if (current()) events.mediaStats(source, stats);
      };
    }
    return media;
  }

  private makeContext(): PluginContext {
    const handle = this;
    return {
      sessionId: this.owner.id,
      handleId: this.id,
      opaqueId: this.opaqueId,
      logger: this.logger,
      get media() {
        return handle.mediaBinding;
      },
      openMedia: () => (this.currentState === 'detached' ? null : this.ensureMedia()),
      pushEvent: (data, options) => this.pushEvent(data, options?.transaction, options?.jsep),
      closePeerConnection: (reason) => queueMicrotask(() => this.hangup(reason)),
      endHandle: (reason) => queueMicrotask(() => this.end(reason)),
    };
  }

  private pushEvent(data: JsonObject, transaction: string | undefined, jsep: Jsep | undefined): void {
    this.outbox = this.outbox.then(async () => {
      if (this.currentState === 'detached') return;
      const event: JsonObject = { janus: 'event', session_id: this.owner.id, sender: this.id };
      if (transaction !== undefined) event['transaction'] = transaction;
      event['plugindata'] = { plugin: this.plugin.info.package, data };
      this.events.plugin(this.eventSource, this.plugin.info.package, data);
      if (transaction !== undefined && transaction === this.negotiatingTransaction) {
        if (jsep) this.negotiatingTransaction = null;
        else if (isPluginError(data)) {
          this.negotiatingTransaction = null;
          const media = this.mediaBinding;
          this.owner.deliver(event);
          if (media) this.negotiationFailed(media, pluginErrorText(data));
          return;
        }
      }
      if (jsep) {
        let local: Jsep = jsep;
        const media = this.ensureMedia();
        if (media) {
          try {
            local = await media.prepareLocalDescription(jsep);
          } catch (err) {
            this.logger.warn({ err }, 'could not prepare local jsep; event sent without it');
            this.owner.deliver(event);
            this.hangup('Local description failed');
            return;
          }
        }
        if (this.state === 'detached') return;
        if (local.type === 'offer') this.localOfferPending = true;
        this.apply('localJsep');
        event['jsep'] = { ...local } as JsonObject;
        this.events.jsep(this.eventSource, 'local', local);
      }
      this.owner.deliver(event);
    }).catch((err: unknown) => {
      this.logger.error({ err }, 'pushing plugin event failed');
    });
  }

  /** Runs a plugin callback, containing its failure so one plugin bug cannot break an ending. */
  private callPlugin(what: string, fn: () => void): string | null {
    try {
      fn();
      return null;
    } catch (err) {
      this.logger.error({ err, plugin: this.plugin.info.package, callback: what }, 'plugin callback threw');
      return errorText(err);
    }
  }
}

/** Plugin-level errors are events whose data carries `error_code` (Plugin.ts, every Janus plugin). */
function isPluginError(data: JsonObject): boolean {
  return data['error_code'] !== undefined && data['error_code'] !== null;
}

function pluginErrorText(data: JsonObject): string {
  return typeof data['error'] === 'string' ? data['error'] : `plugin error ${String(data['error_code'])}`;
}

function isPluginReply(value: unknown): value is PluginReply {
  if (typeof value !== 'object' || value === null) return false;
  const kind = (value as { kind?: unknown }).kind;
  if (kind === 'ok') {
    const data = (value as { data?: unknown }).data;
    return typeof data === 'object' && data !== null && !Array.isArray(data);
  }
  if (kind === 'error') return typeof (value as { reason?: unknown }).reason === 'string';
  return kind === 'wait';
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
