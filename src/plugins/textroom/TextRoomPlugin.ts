/**
 * `janus.plugin.textroom` (Janus 1.x TextRoom): text rooms over data channels.
 * A handle sets its PeerConnection up with `setup` (ferry offers one
 * m=application), answers with `ack`, and from then on speaks the Text Room
 * API as JSON over its data channel: `join`, `leave`, `message` (public, or a
 * whisper `to`/`tos`), `announcement`, and the room management requests,
 * which also come over the Janus API as `request` (and Admin
 * `message_plugin`). One handle may be in many rooms. Rooms and their requests
 * are in requests.ts; this file holds the plugin's rooms, permanent-room file
 * and quotas, and each handle's setup and data channel.
 */
import type { Logger } from 'pino';

import { isJsonObject, type JsonObject } from '../../core/Json.js';
import type { DataMessage, Jsep } from '../../core/Media.js';
import type { Plugin, PluginContext, PluginHandle, PluginInfo, PluginMessage, PluginReply } from '../../core/Plugin.js';
import { RequestQueue } from '../../core/RequestQueue.js';
import { createLogger } from '../../log/logger.js';
import { TextRoomError, TextRoomErrorCode } from './errors.js';
import { leaveRoom, runRequest, TEXTROOM_REQUESTS, type ParticipantSide, type RequestContext, type TextRoomEnvironment } from './requests.js';
import { TextRoom, type Participant, type TextRoomConfig } from './TextRoom.js';
import { TextRoomStore } from './TextRoomStore.js';

export const TEXTROOM_PACKAGE = 'janus.plugin.textroom';

/** What the plugin needs from the core's per-client quotas (shared with VideoRoom's rooms). */
export interface TextRoomQuotas {
  /** Counts a room for the session's client; throws when it is at its limit. */
  acquireRoom(sessionId: number): () => void;
}

export interface TextRoomPluginConfig {
  /** JSON file of permanent rooms; null: `permanent: true` is refused with 499. */
  roomsFile: string | null;
  /** When set, `create` needs it, and `list` with it shows private rooms. */
  adminKey: string | null;
  /** Rooms `create` may reach over all clients through the client API (0: no limit; Admin is exempt). */
  maxRooms: number;
  quotas: TextRoomQuotas | null;
  /** Rooms that exist from start (not written to the rooms file). */
  rooms: Array<Partial<TextRoomConfig> & { room: number }>;
}

export interface TextRoomPluginOptions {
  config?: Partial<TextRoomPluginConfig>;
  logger?: Logger;
}

function roomConfig(partial: Partial<TextRoomConfig> & { room: number }): TextRoomConfig {
  return { description: `Room ${partial.room}`, is_private: false, history: 0, check_tokens: false, allowed: [], ...partial };
}

export class TextRoomPlugin implements Plugin, TextRoomEnvironment {
  readonly info: PluginInfo = {
    package: TEXTROOM_PACKAGE,
    name: 'JANUS TextRoom plugin',
    description: 'A text-only room over data channels (ferry implementation).',
    author: 'ferry',
    version: 2,
    versionString: '0.0.2',
  };

  readonly rooms = new Map<number, TextRoom>();
  readonly config: TextRoomPluginConfig;
  readonly logger: Logger;
  private readonly store: TextRoomStore | null;
  private readonly handles = new Set<TextRoomHandle>();

  constructor(options: TextRoomPluginOptions = {}) {
    this.config = { roomsFile: null, adminKey: null, maxRooms: 0, quotas: null, rooms: [], ...options.config };
    this.logger = options.logger ?? createLogger('silent');
    for (const r of this.config.rooms) this.rooms.set(r.room, new TextRoom(roomConfig(r)));
    this.store = this.config.roomsFile ? new TextRoomStore(this.config.roomsFile) : null;
    for (const c of this.store?.load() ?? []) this.rooms.set(c.room, new TextRoom(c));
  }

  get adminKey(): string | null {
    return this.config.adminKey;
  }

  get canSave(): boolean {
    return this.store !== null;
  }

  save(room: number, config: TextRoomConfig | null): boolean {
    if (!this.store) return false;
    try {
      if (config) this.store.put(config);
      else this.store.remove(room);
      return true;
    } catch (err) {
      this.logger.error({ err, room }, 'textroom: could not save the rooms file');
      return false;
    }
  }

  makeRoom(config: TextRoomConfig): TextRoom {
    const room = new TextRoom(config);
    this.rooms.set(config.room, room);
    return room;
  }

  admitRoom(sessionId: number | null): (() => void) | null {
    if (sessionId === null) return null;
    const created = [...this.rooms.values()].filter((r) => r.byClient).length;
    if (this.config.maxRooms > 0 && created >= this.config.maxRooms) {
      throw new TextRoomError(TextRoomErrorCode.UNAUTHORIZED, `Too many rooms (at most ${this.config.maxRooms})`);
    }
    try {
      return this.config.quotas?.acquireRoom(sessionId) ?? null;
    } catch (err) {
      throw new TextRoomError(TextRoomErrorCode.UNAUTHORIZED, err instanceof Error ? err.message : String(err));
    }
  }

  dropRoom(room: TextRoom): void {
    const release = room.quotaRelease;
    room.quotaRelease = null;
    release?.();
  }

  attach(context: PluginContext): PluginHandle {
    const handle = new TextRoomHandle(this, context);
    this.handles.add(handle);
    return handle;
  }

  forgetHandle(handle: TextRoomHandle): void {
    this.handles.delete(handle);
  }

  /** Admin `message_plugin`: the management requests, as over the Janus API. */
  handleAdminMessage(request: JsonObject): JsonObject {
    const name = request['request'];
    if (typeof name !== 'string') return apiError(name === undefined || name === null ? 'Missing element (request)' : 'Invalid element type (request should be a string)', name === undefined || name === null ? TextRoomErrorCode.MISSING_ELEMENT : TextRoomErrorCode.INVALID_ELEMENT);
    if (name.toLowerCase() === 'message') return apiError(`Unknown request '${name}'`, TextRoomErrorCode.INVALID_REQUEST);
    return runRequest(this, name.toLowerCase(), request, { via: 'api', participant: null, sessionId: null }) ?? { textroom: 'success' };
  }

  destroy(): void {
    this.rooms.clear();
  }
}

function apiError(error: string, code: number): JsonObject {
  return { textroom: 'event', error_code: code, error };
}

/** The requests that set the PeerConnection up (asynchronous, with a jsep). */
const SETUP_REQUESTS = new Set(['setup', 'ack', 'restart']);

/** One handle: its PeerConnection's setup, its data channel, and its places in rooms. */
class TextRoomHandle implements PluginHandle, ParticipantSide {
  readonly rooms = new Map<number, Participant>();
  private setUp = false;
  private destroyed = false;
  private readonly requests = new RequestQueue((err, message) => {
    const error = err instanceof TextRoomError ? err : new TextRoomError(TextRoomErrorCode.UNKNOWN_ERROR, err instanceof Error ? err.message : String(err));
    if (!this.destroyed) this.ctx.pushEvent(apiError(error.message, error.code), { transaction: message.transaction });
  });
  /** Text from the client that was not a request (binary, not JSON): dropped, counted. */
  private dropped = 0;
  readonly member: Participant['member'] = {
    send: (text) => {
      if (!this.destroyed) this.ctx.media?.sendData?.({ data: text });
    },
    forget: (room) => {
      this.rooms.delete(room);
    },
  };

  constructor(private readonly plugin: TextRoomPlugin, private readonly ctx: PluginContext) {}

  private context(via: RequestContext['via']): RequestContext {
    return { via, participant: this, sessionId: this.ctx.sessionId };
  }

  handleMessage(message: PluginMessage): PluginReply {
    const body = message.body;
    const request = body['request'];
    if (typeof request !== 'string') {
      const missing = request === undefined || request === null;
      return { kind: 'ok', data: apiError(missing ? 'Missing element (request)' : 'Invalid element type (request should be a string)', missing ? TextRoomErrorCode.MISSING_ELEMENT : TextRoomErrorCode.INVALID_ELEMENT) };
    }
    const name = request.toLowerCase();
    if (SETUP_REQUESTS.has(name)) {
      this.requests.push(message, (m) => this.setupRequest(name, m));
      return { kind: 'wait' };
    }
    const entry = TEXTROOM_REQUESTS[name];
    if (!entry?.api) return { kind: 'ok', data: apiError(`Unknown request '${request}'`, TextRoomErrorCode.INVALID_REQUEST) };
    return { kind: 'ok', data: runRequest(this.plugin, name, body, this.context('api')) ?? { textroom: 'success' } };
  }

  /** setup: ferry offers one m=application; ack: the client's answer came (applied by the core); restart: a new offer. */
  private async setupRequest(name: string, message: PluginMessage): Promise<void> {
    if (this.destroyed) return;
    let jsep: Jsep | undefined;
    if (name === 'setup' || name === 'restart') {
      if (name === 'setup' && this.setUp) throw new TextRoomError(TextRoomErrorCode.ALREADY_SETUP, 'PeerConnection already setup');
      if (name === 'restart' && !this.setUp) throw new TextRoomError(TextRoomErrorCode.ALREADY_SETUP, 'PeerConnection not setup');
      const media = this.ctx.media ?? this.ctx.openMedia();
      if (!media?.createOffer) throw new TextRoomError(TextRoomErrorCode.UNKNOWN_ERROR, 'WebRTC media is not available in this build');
      jsep = await media.createOffer([{ kind: 'data' }]);
      this.setUp = true;
    }
    if (this.destroyed) return;
    this.ctx.pushEvent({ textroom: 'event', result: 'ok' }, { transaction: message.transaction, jsep });
  }

  /** A Text Room API request over the data channel; the reply goes back the same way. */
  incomingData(message: DataMessage): void {
    if (this.destroyed) return;
    if (message.binary) {
      // Janus's TextRoom speaks text only.
      this.dropped++;
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(message.data.toString('utf8'));
    } catch {
      this.dropped++;
      return;
    }
    if (!isJsonObject(parsed)) {
      this.reply({ textroom: 'error', error_code: TextRoomErrorCode.INVALID_JSON, error: 'JSON error: not an object' });
      return;
    }
    const request = parsed['textroom'];
    const transaction = parsed['transaction'];
    let reply: JsonObject | null;
    if (typeof request !== 'string' || typeof transaction !== 'string') {
      const missing = typeof request !== 'string' ? 'textroom' : 'transaction';
      const absent = parsed[missing] === undefined || parsed[missing] === null;
      reply = {
        textroom: 'error',
        error_code: absent ? TextRoomErrorCode.MISSING_ELEMENT : TextRoomErrorCode.INVALID_ELEMENT,
        error: absent ? `Missing element (${missing})` : `Invalid element type (${missing} should be a string)`,
      };
    } else {
      reply = runRequest(this.plugin, request.toLowerCase(), parsed, this.context('datachannel'));
    }
    if (reply === null) return;
    if (typeof transaction === 'string') reply['transaction'] = transaction;
    this.reply(reply);
  }

  private reply(data: JsonObject): void {
    this.member.send(JSON.stringify(data));
  }

  setupMedia(): void {
    // The data channel opens by itself; requests come once the client sends them.
  }

  /** The PeerConnection is gone: the handle leaves every room (the others hear `leave`), and may set up again. */
  hangupMedia(): void {
    this.leaveAll();
    this.setUp = false;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.leaveAll();
    this.destroyed = true;
    this.plugin.forgetHandle(this);
  }

  private leaveAll(): void {
    for (const [id, participant] of [...this.rooms]) {
      const room = this.plugin.rooms.get(id);
      if (room && room.participants.get(participant.username) === participant) leaveRoom(room, this, participant);
      else this.rooms.delete(id);
    }
  }

  query(): JsonObject {
    return { rooms: [...this.rooms.keys()], setup: this.setUp, dropped: this.dropped, destroyed: this.destroyed };
  }
}
