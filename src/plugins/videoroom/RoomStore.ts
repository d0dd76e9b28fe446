/**
 * Permanent rooms on disk. The file is JSON `{"rooms":[RoomConfig…]}`; every
 * change writes a temporary file in the same directory, fsyncs it and renames
 * it over the old one, so a crash leaves either the old or the new file,
 * never a torn one (rename(2) is atomic within a file system).
 */
import { RoomListStore } from '../../core/JsonListStore.js';
import type { JsonObject } from '../../core/Json.js';
import { defaultRoomConfig, type RoomConfig } from './Room.js';

export class RoomStore extends RoomListStore<RoomConfig> {
  constructor(path: string) {
    super(path, restoreConfig);
  }
}

/** Rebuilds a RoomConfig from stored JSON, taking defaults for anything absent or of the wrong type. */
export function restoreConfig(room: number, stored: JsonObject): RoomConfig {
  const config = defaultRoomConfig(room);
  const target = config as unknown as Record<string, unknown>;
  for (const [key, def] of Object.entries(target)) {
    const v = stored[key];
    if (v === undefined || key === 'room') continue;
    if (key === 'allowed') {
      if (v === null || (Array.isArray(v) && v.every((x) => typeof x === 'string'))) target[key] = v;
    } else if (Array.isArray(def)) {
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) target[key] = v;
    } else if (typeof v === typeof def) {
      target[key] = v;
    }
  }
  for (const key of ['secret', 'pin', 'vp9_profile', 'h264_profile', 'rec_dir'] as const) {
    const v = stored[key];
    if (typeof v === 'string') config[key] = v;
  }
  return config;
}
