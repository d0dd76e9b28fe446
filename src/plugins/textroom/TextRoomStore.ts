/**
 * Permanent TextRoom rooms on disk, kept as VideoRoom keeps its own: JSON
 * `{"rooms":[TextRoomConfig…]}` in a JsonListStore (each change written whole,
 * atomically, owner-only since it holds secrets and pins).
 */
import { RoomListStore } from '../../core/JsonListStore.js';
import type { JsonObject } from '../../core/Json.js';
import type { TextRoomConfig } from './TextRoom.js';

export class TextRoomStore extends RoomListStore<TextRoomConfig> {
  constructor(path: string) {
    super(path, restore);
  }
}

/** A stored room, with defaults for anything absent or of the wrong type. */
function restore(room: number, stored: JsonObject): TextRoomConfig {
  const config: TextRoomConfig = {
    room,
    description: typeof stored['description'] === 'string' ? stored['description'] : `Room ${room}`,
    is_private: stored['is_private'] === true,
    history: typeof stored['history'] === 'number' && Number.isSafeInteger(stored['history']) && stored['history'] >= 0 ? stored['history'] : 0,
    check_tokens: stored['check_tokens'] === true,
    allowed: Array.isArray(stored['allowed']) && stored['allowed'].every((x) => typeof x === 'string') ? (stored['allowed'] as string[]) : [],
  };
  for (const key of ['secret', 'pin', 'post'] as const) {
    const v = stored[key];
    if (typeof v === 'string') config[key] = v;
  }
  return config;
}
