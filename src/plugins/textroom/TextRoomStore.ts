/**
 * Permanent TextRoom rooms on disk, as VideoRoom keeps its own (RoomStore.ts):
 * JSON `{"rooms":[TextRoomConfig…]}`, each change written to a temporary file
 * in the same directory, fsynced and renamed over the old one (atomic within
 * a file system), owner-only since it holds secrets and pins.
 */
import { closeSync, fchmodSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

import { isJsonObject, type JsonObject } from '../../core/Json.js';
import type { TextRoomConfig } from './TextRoom.js';

export class TextRoomStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TextRoomStoreError';
  }
}

export class TextRoomStore {
  private readonly saved = new Map<number, TextRoomConfig>();
  private tempCounter = 0;

  constructor(readonly path: string) {}

  /** Reads the file; a missing file is an empty store, a corrupt one an error naming it. */
  load(): TextRoomConfig[] {
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
      throw new TextRoomStoreError(`rooms file ${this.path}: ${(err as Error).message}`);
    }
    if (!isJsonObject(parsed) || !Array.isArray(parsed['rooms'])) throw new TextRoomStoreError(`rooms file ${this.path}: expected {"rooms":[...]}`);
    this.saved.clear();
    for (const entry of parsed['rooms']) {
      if (!isJsonObject(entry) || typeof entry['room'] !== 'number' || !Number.isSafeInteger(entry['room']) || entry['room'] <= 0) {
        throw new TextRoomStoreError(`rooms file ${this.path}: a room entry has no valid "room" id`);
      }
      this.saved.set(entry['room'], restore(entry['room'], entry));
    }
    return [...this.saved.values()].map((c) => structuredClone(c));
  }

  put(config: TextRoomConfig): void {
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
  private write(next: Map<number, TextRoomConfig>): void {
    const text = `${JSON.stringify({ rooms: [...next.values()] }, null, 2)}\n`;
    const temp = join(dirname(this.path), `.${basename(this.path)}.${process.pid}.${++this.tempCounter}.tmp`);
    try {
      const fd = openSync(temp, 'w', 0o600);
      try {
        fchmodSync(fd, 0o600);
        writeSync(fd, text);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(temp, this.path);
    } catch (err) {
      try {
        unlinkSync(temp);
      } catch {
        // The temp file may not exist (open failed); nothing to clean.
      }
      throw new TextRoomStoreError(`could not save rooms file ${this.path}: ${(err as Error).message}`);
    }
    this.saved.clear();
    for (const [k, v] of next) this.saved.set(k, v);
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
