/**
 * The TextRoom requests (janus_textroom.c's Text Room API), one table: which
 * may come over the Janus API as well as the data channel, and each run. A run
 * returns the reply, or null when none is owed (a `message` with `ack: false`).
 * Replies differ by where the request came from, as in Janus: `create`,
 * `edit` and `destroy` answer `created`/`edited`/`destroyed` on the Janus API
 * and `success` on the data channel.
 */
import { freshId } from '../../core/FreshId.js';
import type { JsonObject } from '../../core/Json.js';
import type { Table } from '../../core/RequestTable.js';
import { checkSecret, noSuchRoom, strings, TextRoomError, TextRoomErrorCode, validate } from './errors.js';
import { messageDate, type Participant, type TextRoom, type TextRoomConfig } from './TextRoom.js';

/** Who asked, and over what. */
export interface RequestContext {
  via: 'api' | 'datachannel';
  /** The asking handle's side of the rooms (null: Admin `message_plugin`). */
  participant: ParticipantSide | null;
  /** The asking handle's session, for per-client room quotas (null: Admin, exempt). */
  sessionId: number | null;
}

/** What a request needs of the asking handle. */
export interface ParticipantSide {
  rooms: Map<number, Participant>;
  member: Participant['member'];
}

/** What the requests need of the plugin. */
export interface TextRoomEnvironment {
  readonly rooms: Map<number, TextRoom>;
  readonly adminKey: string | null;
  readonly canSave: boolean;
  /** Writes (or, with null, removes) a permanent room; false when the file could not be written. */
  save(room: number, config: TextRoomConfig | null): boolean;
  makeRoom(config: TextRoomConfig): TextRoom;
  /** Counts a room created through the client API; throws TextRoomError when a quota refuses. */
  admitRoom(sessionId: number | null): (() => void) | null;
  /** A room went (destroy): gives its quota back. */
  dropRoom(room: TextRoom): void;
}

const ROOM: Table = { room: { kind: 'positive', required: true } };

function roomOf(env: TextRoomEnvironment, body: JsonObject): TextRoom {
  validate(body, ROOM);
  const id = body['room'] as number;
  const room = env.rooms.get(id);
  if (!room) throw noSuchRoom(id);
  return room;
}

function participantIn(ctx: RequestContext, room: TextRoom): Participant {
  const p = ctx.participant?.rooms.get(room.id);
  if (!p) throw new TextRoomError(TextRoomErrorCode.NOT_IN_ROOM, `Not in room ${room.id}`);
  return p;
}

function describeParticipant(p: Participant): JsonObject {
  return p.display !== undefined ? { username: p.username, display: p.display } : { username: p.username };
}

type Run = (env: TextRoomEnvironment, body: JsonObject, ctx: RequestContext) => JsonObject | null;

function join(env: TextRoomEnvironment, body: JsonObject, ctx: RequestContext): JsonObject {
  validate(body, {
    username: { kind: 'string', required: true },
    pin: { kind: 'string' },
    token: { kind: 'string' },
    display: { kind: 'string' },
    history: { kind: 'boolean' },
  });
  const room = roomOf(env, body);
  checkSecret(room.config.pin, body, 'pin');
  const side = ctx.participant!;
  if (side.rooms.has(room.id)) throw new TextRoomError(TextRoomErrorCode.ALREADY_IN_ROOM, `Already in room ${room.id}`);
  const username = body['username'] as string;
  if (room.participants.has(username)) throw new TextRoomError(TextRoomErrorCode.USERNAME_EXISTS, 'Username already taken');
  if (room.config.check_tokens) {
    const token = body['token'];
    if (typeof token !== 'string' || !room.config.allowed.includes(token)) throw new TextRoomError(TextRoomErrorCode.UNAUTHORIZED, 'Unauthorized (not in the allowed list)');
  }
  const participant: Participant = { username, member: side.member };
  if (typeof body['display'] === 'string') participant.display = body['display'];
  const others = [...room.participants.values()];
  room.participants.set(username, participant);
  side.rooms.set(room.id, participant);
  if (body['history'] !== false) for (const text of room.history) side.member.send(text);
  // The joiner hears its own join first, then everyone else does.
  const event = JSON.stringify({ textroom: 'join', room: room.id, ...describeParticipant(participant) });
  side.member.send(event);
  room.broadcast(event, participant);
  return { textroom: 'success', participants: others.map(describeParticipant) };
}

/** Leaves a room: everyone hears `leave` (the leaver too). Also the hangup of a handle, without a reply. */
export function leaveRoom(room: TextRoom, side: ParticipantSide, participant: Participant): void {
  room.participants.delete(participant.username);
  side.rooms.delete(room.id);
  const event = JSON.stringify({ textroom: 'leave', room: room.id, username: participant.username });
  side.member.send(event);
  room.broadcast(event);
}

function leave(env: TextRoomEnvironment, body: JsonObject, ctx: RequestContext): JsonObject {
  const room = roomOf(env, body);
  leaveRoom(room, ctx.participant!, participantIn(ctx, room));
  return { textroom: 'success' };
}

function message(env: TextRoomEnvironment, body: JsonObject, ctx: RequestContext): JsonObject | null {
  validate(body, {
    text: { kind: 'string', required: true },
    to: { kind: 'string' },
    tos: { kind: 'array' },
    ack: { kind: 'boolean' },
  });
  const room = roomOf(env, body);
  const sender = participantIn(ctx, room);
  const to = body['to'] as string | undefined;
  const tos = body['tos'] === undefined || body['tos'] === null ? undefined : strings(body['tos'], 'Invalid tos provided');
  if (to !== undefined && tos !== undefined) throw new TextRoomError(TextRoomErrorCode.INVALID_ELEMENT, 'Both to and tos array provided');
  const whisper = to !== undefined || tos !== undefined;
  const event: JsonObject = { textroom: 'message', room: room.id, from: sender.username, date: messageDate(), text: body['text'] as string };
  if (whisper) event['whisper'] = true;
  const text = JSON.stringify(event);
  const reply: JsonObject = { textroom: 'success' };
  if (whisper) {
    const sent: JsonObject = {};
    for (const name of to !== undefined ? [to] : tos!) {
      const target = room.participants.get(name);
      target?.member.send(text);
      sent[name] = target !== undefined;
    }
    reply['sent'] = sent;
  } else {
    // Public: everyone, the sender included; the history keeps who sent it by display too.
    room.broadcast(text);
    room.remember(JSON.stringify(sender.display !== undefined ? { ...event, display: sender.display } : event));
  }
  // ack: false spares the reply on the data channel; the Janus API always answers.
  return body['ack'] === false && ctx.via === 'datachannel' ? null : reply;
}

function announcement(env: TextRoomEnvironment, body: JsonObject): JsonObject {
  validate(body, {
    secret: { kind: 'string' },
    text: { kind: 'string', required: true },
  });
  const room = roomOf(env, body);
  checkSecret(room.config.secret, body, 'secret');
  const text = JSON.stringify({ textroom: 'announcement', room: room.id, date: messageDate(), text: body['text'] as string });
  room.broadcast(text);
  room.remember(text);
  return { textroom: 'success' };
}

function list(env: TextRoomEnvironment, body: JsonObject): JsonObject {
  // A valid admin_key (when one is configured) shows the private rooms too.
  let showPrivate = false;
  const key = body['admin_key'];
  if (env.adminKey !== null && typeof key === 'string' && key.length > 0) {
    checkSecret(env.adminKey, body, 'admin_key');
    showPrivate = true;
  }
  return { textroom: 'success', list: [...env.rooms.values()].filter((r) => showPrivate || !r.config.is_private).map((r) => r.describe()) };
}

function listparticipants(env: TextRoomEnvironment, body: JsonObject): JsonObject {
  const room = roomOf(env, body);
  return { textroom: 'success', room: room.id, participants: [...room.participants.values()].map(describeParticipant) };
}

function exists(env: TextRoomEnvironment, body: JsonObject): JsonObject {
  validate(body, ROOM);
  const id = body['room'] as number;
  return { textroom: 'success', room: id, exists: env.rooms.has(id) };
}

function allowed(env: TextRoomEnvironment, body: JsonObject): JsonObject {
  validate(body, {
    secret: { kind: 'string' },
    action: { kind: 'string', required: true },
    allowed: { kind: 'array' },
  });
  validate(body, ROOM);
  const action = body['action'] as string;
  if (!['enable', 'disable', 'add', 'remove'].includes(action.toLowerCase())) {
    throw new TextRoomError(TextRoomErrorCode.INVALID_ELEMENT, `Unsupported action '${action}' (allowed)`);
  }
  const room = roomOf(env, body);
  checkSecret(room.config.secret, body, 'secret');
  const c = room.config;
  switch (action.toLowerCase()) {
    case 'enable':
      c.check_tokens = true;
      break;
    case 'disable':
      c.check_tokens = false;
      break;
    default: {
      const tokens = strings(body['allowed'], 'Invalid element in the allowed array (not a string)');
      if (action.toLowerCase() === 'add') c.allowed = [...new Set([...c.allowed, ...tokens])];
      else c.allowed = c.allowed.filter((t) => !tokens.includes(t));
    }
  }
  const reply: JsonObject = { textroom: 'success', room: room.id };
  if (action.toLowerCase() !== 'disable') reply['allowed'] = [...c.allowed];
  return reply;
}

function kick(env: TextRoomEnvironment, body: JsonObject): JsonObject {
  validate(body, {
    secret: { kind: 'string' },
    username: { kind: 'string', required: true },
  });
  const room = roomOf(env, body);
  checkSecret(room.config.secret, body, 'secret');
  const username = body['username'] as string;
  const participant = room.participants.get(username);
  if (!participant) throw new TextRoomError(TextRoomErrorCode.NO_SUCH_USER, `No such user ${username} in room ${room.id}`);
  // Everyone hears it, the kicked one included, before it is out.
  room.broadcast(JSON.stringify({ textroom: 'kicked', room: room.id, username }));
  room.participants.delete(username);
  participant.member.forget(room.id);
  return { textroom: 'success' };
}

function create(env: TextRoomEnvironment, body: JsonObject, ctx: RequestContext): JsonObject {
  validate(body, {
    description: { kind: 'string' },
    secret: { kind: 'string' },
    pin: { kind: 'string' },
    post: { kind: 'string' },
    is_private: { kind: 'boolean' },
    history: { kind: 'positive' },
    allowed: { kind: 'array' },
    permanent: { kind: 'boolean' },
  });
  validate(body, { room: { kind: 'positive' } });
  if (env.adminKey !== null) {
    validate(body, { admin_key: { kind: 'string', required: true } });
    checkSecret(env.adminKey, body, 'admin_key');
  }
  const allowedTokens = body['allowed'] === undefined || body['allowed'] === null ? null : strings(body['allowed'], 'Invalid element in the allowed array (not a string)');
  const permanent = body['permanent'] === true;
  if (permanent && !env.canSave) throw new TextRoomError(TextRoomErrorCode.UNKNOWN_ERROR, "No configuration file, can't create permanent room");
  const requested = typeof body['room'] === 'number' && body['room'] > 0 ? body['room'] : undefined;
  if (requested !== undefined && env.rooms.has(requested)) throw new TextRoomError(TextRoomErrorCode.ROOM_EXISTS, `Room ${requested} already exists`);
  const id = requested ?? freshId((i) => env.rooms.has(i));
  if (id === undefined) throw new TextRoomError(TextRoomErrorCode.UNKNOWN_ERROR, 'Could not pick a free id');
  const release = env.admitRoom(ctx.sessionId);
  const description = typeof body['description'] === 'string' && body['description'].length > 0 ? body['description'] : `Room ${id}`;
  const config: TextRoomConfig = {
    room: id,
    description,
    is_private: body['is_private'] === true,
    history: typeof body['history'] === 'number' ? body['history'] : 0,
    check_tokens: allowedTokens !== null,
    allowed: allowedTokens ?? [],
  };
  for (const key of ['secret', 'pin', 'post'] as const) if (typeof body[key] === 'string') config[key] = body[key];
  const room = env.makeRoom(config);
  room.byClient = ctx.sessionId !== null;
  room.quotaRelease = release;
  // A file that cannot be written leaves the room temporary (permanent: false), as in Janus.
  const saved = permanent && env.save(id, config);
  return { textroom: ctx.via === 'api' ? 'created' : 'success', room: id, permanent: saved };
}

function edit(env: TextRoomEnvironment, body: JsonObject, ctx: RequestContext): JsonObject {
  validate(body, {
    secret: { kind: 'string' },
    new_description: { kind: 'string' },
    new_secret: { kind: 'string' },
    new_pin: { kind: 'string' },
    new_post: { kind: 'string' },
    new_is_private: { kind: 'boolean' },
    permanent: { kind: 'boolean' },
  });
  validate(body, ROOM);
  const permanent = body['permanent'] === true;
  if (permanent && !env.canSave) throw new TextRoomError(TextRoomErrorCode.UNKNOWN_ERROR, "No configuration file, can't edit room permanently");
  const room = roomOf(env, body);
  checkSecret(room.config.secret, body, 'secret');
  const c = room.config;
  const nonEmpty = (key: string): string | undefined => (typeof body[key] === 'string' && (body[key] as string).length > 0 ? (body[key] as string) : undefined);
  c.description = nonEmpty('new_description') ?? c.description;
  if (typeof body['new_is_private'] === 'boolean') c.is_private = body['new_is_private'];
  const secret = nonEmpty('new_secret');
  if (secret !== undefined) c.secret = secret;
  const pin = nonEmpty('new_pin');
  if (pin !== undefined) c.pin = pin;
  const post = nonEmpty('new_post');
  if (post !== undefined) c.post = post;
  const saved = permanent && env.save(room.id, c);
  return { textroom: ctx.via === 'api' ? 'edited' : 'success', room: room.id, permanent: saved };
}

function destroy(env: TextRoomEnvironment, body: JsonObject, ctx: RequestContext): JsonObject {
  validate(body, { permanent: { kind: 'boolean' } });
  validate(body, ROOM);
  const permanent = body['permanent'] === true;
  if (permanent && !env.canSave) throw new TextRoomError(TextRoomErrorCode.UNKNOWN_ERROR, "No configuration file, can't destroy room permanently");
  const room = roomOf(env, body);
  checkSecret(room.config.secret, body, 'secret');
  env.rooms.delete(room.id);
  room.destroyed = true;
  const saved = permanent && env.save(room.id, null);
  const event = JSON.stringify({ textroom: 'destroyed', room: room.id });
  // Who asked over the data channel hears it too, once, whether in the room or not.
  const asker = ctx.via === 'datachannel' ? ctx.participant : null;
  if (asker && !asker.rooms.has(room.id)) asker.member.send(event);
  room.broadcast(event);
  for (const p of room.participants.values()) p.member.forget(room.id);
  room.participants.clear();
  env.dropRoom(room);
  return { textroom: ctx.via === 'api' ? 'destroyed' : 'success', room: room.id, permanent: saved };
}

/** Every request: whether the Janus API takes it too (`request`), and its run. */
export const TEXTROOM_REQUESTS: Readonly<Record<string, { api: boolean; run: Run }>> = {
  join: { api: false, run: join },
  leave: { api: false, run: leave },
  message: { api: true, run: message },
  announcement: { api: true, run: announcement },
  list: { api: true, run: list },
  listparticipants: { api: true, run: listparticipants },
  exists: { api: true, run: exists },
  allowed: { api: true, run: allowed },
  kick: { api: true, run: kick },
  create: { api: true, run: create },
  edit: { api: true, run: edit },
  destroy: { api: true, run: destroy },
};

/** Runs one request; a refusal becomes the error reply of the channel it came over. */
export function runRequest(env: TextRoomEnvironment, name: string, body: JsonObject, ctx: RequestContext): JsonObject | null {
  const entry = TEXTROOM_REQUESTS[name];
  try {
    if (!entry || (ctx.via === 'api' && !entry.api)) {
      throw new TextRoomError(TextRoomErrorCode.INVALID_REQUEST, ctx.via === 'api' ? `Unknown request '${name}'` : `Unsupported request ${name}`);
    }
    if (!entry.api && !ctx.participant) throw new TextRoomError(TextRoomErrorCode.INVALID_REQUEST, `Unsupported request ${name}`);
    return entry.run(env, body, ctx);
  } catch (err) {
    const error = err instanceof TextRoomError ? err : new TextRoomError(TextRoomErrorCode.UNKNOWN_ERROR, err instanceof Error ? err.message : String(err));
    return { textroom: ctx.via === 'api' ? 'event' : 'error', error_code: error.code, error: error.message };
  }
}
