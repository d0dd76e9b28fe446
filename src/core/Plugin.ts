/**
 * The plugin interface, modelled on Janus's `janus_plugin` (plugin.h):
 * `attach` ↔ create_session, `PluginHandle.handleMessage` ↔ handle_message,
 * `setupMedia`/`hangupMedia` ↔ setup_media/hangup_media, `destroy` ↔
 * destroy_session, `PluginContext.pushEvent` ↔ gateway->push_event.
 */
import type { Logger } from 'pino';
import type { JsonObject } from './Json.js';
import type { DataMessage, HandleMedia, Jsep } from './Media.js';

export interface PluginInfo {
  /** Package name used on the wire, e.g. `janus.plugin.echotest`. */
  readonly package: string;
  readonly name: string;
  readonly description: string;
  readonly author: string;
  readonly version: number;
  readonly versionString: string;
}

export interface PluginMessage {
  transaction: string;
  body: JsonObject;
  /** The client's jsep, already validated (and applied to the PeerConnection when media exists). */
  jsep?: Jsep;
}

/**
 * Reply to `handleMessage`:
 * - `ok`: synchronous result → Janus `success` with `plugindata.data` = data.
 *   Plugin-level errors are `ok` replies whose data carries `error_code`/`error`.
 * - `wait`: the plugin answers later through `pushEvent` → Janus `ack` (with `hint`).
 * - `error`: the plugin could not handle the message at all → core error 462.
 */
export type PluginReply =
  | { kind: 'ok'; data: JsonObject }
  | { kind: 'wait'; hint?: string }
  | { kind: 'error'; reason: string };

/** What the core gives a plugin for one handle. */
export interface PluginContext {
  readonly sessionId: number;
  readonly handleId: number;
  readonly opaqueId: string | null;
  readonly logger: Logger;
  /** This handle's PeerConnection, or null when the WebRTC layer is not wired or none exists yet. */
  readonly media: HandleMedia | null;
  /**
   * Opens this handle's PeerConnection now (or returns the open one), for plugins
   * that make the first offer (VideoRoom subscribers, SIP incoming calls). Null
   * on a detached handle or a gateway without a media layer.
   */
  openMedia(): HandleMedia | null;
  /**
   * Pushes a plugin event to the client (`janus: "event"`). A jsep is merged by
   * the media layer first. Events keep their order. Dropped once the handle ended.
   */
  pushEvent(data: JsonObject, options?: { transaction?: string | undefined; jsep?: Jsep | undefined }): void;
  /** Janus `close_pc`: tear the PeerConnection down (the core then calls `hangupMedia`). */
  closePeerConnection(reason: string): void;
  /** Janus `end_session`: detach this handle. */
  endHandle(reason: string): void;
}

/** A plugin's state for one attached handle. */
export interface PluginHandle {
  handleMessage(message: PluginMessage): PluginReply | Promise<PluginReply>;
  /** The PeerConnection is up (ICE + DTLS done). */
  setupMedia(): void;
  /**
   * Media is gone (client hangup, PeerConnection failure, detach). Called even
   * when no SDP was ever exchanged, so plugin cleanup never depends on SDP
   * state (lessons.md §1). Must be idempotent.
   */
  hangupMedia(reason: string): void;
  /** The handle is detached: release everything. Called exactly once. */
  destroy(reason: string): void;
  /** `plugin_specific` section of Admin `handle_info`. */
  query(): JsonObject;
  /** A data-channel message from the client (Janus `incoming_data`). */
  incomingData?(message: DataMessage): void;
  /** The client's data channel can be sent on (Janus `data_ready`). */
  dataReady?(): void;
  /**
   * Where this handle's media belongs, asked with every request body before its jsep is
   * applied (e.g. a VideoRoom's room): the engine keeps one group's endpoints on few media
   * threads. Undefined keeps the last answer.
   */
  placementGroup?(body: JsonObject): string | undefined;
}

export interface Plugin {
  readonly info: PluginInfo;
  /** Creates the plugin's per-handle state. Throwing gives the client error 461. */
  attach(context: PluginContext): PluginHandle;
  /** Admin `message_plugin`. Absent → error 462 "Plugin doesn't support Admin API messages". */
  handleAdminMessage?(request: JsonObject): JsonObject | Promise<JsonObject>;
  /** Gateway shutdown, after every handle has been destroyed. */
  destroy(): void;
}
