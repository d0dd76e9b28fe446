/**
 * A TextRoom room: its options (what `create` set and `edit` changes, what a
 * permanent room stores), who is in it (one participant per username, each
 * belonging to one handle) and the last messages kept as history.
 */
import type { JsonObject } from '../../core/Json.js';

/** Every room option; also the shape a permanent room is stored in. */
export interface TextRoomConfig {
  room: number;
  description: string;
  secret?: string;
  pin?: string;
  is_private: boolean;
  /** Messages kept and replayed to who joins (0: none). */
  history: number;
  /** Janus's HTTP backend for messages: kept, but ferry posts nowhere (see README). */
  post?: string;
  /** `join` needs one of `allowed` (Janus `allowed` enable/disable; the list stays across a disable). */
  check_tokens: boolean;
  allowed: string[];
}

/** What a participant's handle offers the room. */
export interface TextRoomMember {
  /** Sends one text message on the handle's data channel (Janus relay_data with no label). */
  send(text: string): void;
  /** The room let the participant go (kicked, room destroyed): the handle forgets it. */
  forget(room: number): void;
}

export interface Participant {
  username: string;
  display?: string;
  member: TextRoomMember;
}

export class TextRoom {
  readonly participants = new Map<string, Participant>();
  /** Serialized message and announcement events, oldest first, at most config.history. */
  readonly history: string[] = [];
  destroyed = false;
  /** Created through the client API (counted against max_rooms; not Admin's, config's or the file's). */
  byClient = false;
  /** Gives back the creating client's room quota; called once, when the room ends. */
  quotaRelease: (() => void) | null = null;

  constructor(public config: TextRoomConfig) {}

  get id(): number {
    return this.config.room;
  }

  /** Sends `text` to every participant (but `except`). */
  broadcast(text: string, except?: Participant): void {
    for (const p of this.participants.values()) if (p !== except) p.member.send(text);
  }

  remember(text: string): void {
    if (this.config.history <= 0) return;
    this.history.push(text);
    while (this.history.length > this.config.history) this.history.shift();
  }

  /** A `list` entry (Janus: room, description, pin_required, num_participants, history). */
  describe(): JsonObject {
    return {
      room: this.id,
      description: this.config.description,
      pin_required: this.config.pin !== undefined,
      num_participants: this.participants.size,
      history: this.config.history,
    };
  }
}

/** Janus's date of a message: local time as strftime("%FT%T%z") writes it. */
export function messageDate(now: Date = new Date()): string {
  const pad = (n: number, w = 2) => String(Math.abs(n)).padStart(w, '0');
  const offset = -now.getTimezoneOffset();
  const sign = offset >= 0 ? '+' : '-';
  return (
    `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}T${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())}` +
    `${sign}${pad(Math.trunc(Math.abs(offset) / 60))}${pad(Math.abs(offset) % 60)}`
  );
}
