/**
 * Permanent rooms on disk. The file is JSON `{"rooms":[RoomConfig…]}`; every
 * change writes a temporary file in the same directory, fsyncs it and renames
 * it over the old one, so a crash leaves either the old or the new file,
 * never a torn one (rename(2) is atomic within a file system).
 */
import { readFileSync } from 'node:fs';
import { writeOwnerOnlyAtomically } from '../../core/AtomicFile.js';
import { isJsonObject, type JsonObject } from '../../core/Json.js';
import { defaultRoomConfig, type RoomConfig } from './Room.js';

export class RoomStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RoomStoreError';
  }
}

export class RoomStore {
  /** What the file holds: only what `permanent: true` requests saved. */
  private readonly saved = new Map<number, RoomConfig>();

  constructor(readonly path: string) {}

  /** Reads the file; a missing file is an empty store, a corrupt one an error naming it. */
  load(): RoomConfig[] {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new RoomStoreError(`rooms file ${this.path}: ${(err as Error).message}`);
    }
    if (!isJsonObject(parsed) || !Array.isArray(parsed['rooms'])) throw new RoomStoreError(`rooms file ${this.path}: expected {"rooms":[...]}`);
    this.saved.clear();
    for (const entry of parsed['rooms']) {
      if (!isJsonObject(entry) || typeof entry['room'] !== 'number' || !Number.isSafeInteger(entry['room']) || entry['room'] <= 0) {
        throw new RoomStoreError(`rooms file ${this.path}: a room entry has no valid "room" id`);
      }
      this.saved.set(entry['room'], restoreConfig(entry['room'], entry));
    }
    return [...this.saved.values()].map((c) => structuredClone(c));
  }

  has(room: number): boolean {
    return this.saved.has(room);
  }

  put(config: RoomConfig): void {
    const next = new Map(this.saved);
    next.set(config.room, structuredClone(config));
    this.write(next);
  }

  remove(room: number): void {
    if (!this.saved.has(room)) return;
    const next = new Map(this.saved);
    next.delete(room);
    this.write(next);
  }

  /** Writes the file first and only then updates memory, so a failed write changes nothing. */
  private write(next: Map<number, RoomConfig>): void {
    const text = `${JSON.stringify({ rooms: [...next.values()] }, null, 2)}\n`;
    try {
      writeOwnerOnlyAtomically(this.path, text);
    } catch (err) {
      throw new RoomStoreError(`could not save rooms file ${this.path}: ${(err as Error).message}`);
    }
    this.saved.clear();
    for (const [k, v] of next) this.saved.set(k, v);
  }
}

/** Rebuilds a RoomConfig from stored JSON, taking defaults for anything absent or of the wrong type. */
function restoreConfig(room: number, stored: JsonObject): RoomConfig {
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
