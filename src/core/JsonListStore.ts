/**
 * A plugin's permanent configurations on disk (VideoRoom rooms, Streaming mountpoints): JSON
 * `{"<key>":[config…]}`, read once at start, every change written whole with
 * writeOwnerOnlyAtomically (a crash leaves the old or the new file, never a torn one; owner-only
 * because secrets and PINs are in it in plain text). Memory changes only after the file did.
 */
import { readFileSync } from 'node:fs';
import { writeOwnerOnlyAtomically } from './AtomicFile.js';
import { isJsonObject, type JsonObject } from './Json.js';

export class JsonListStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JsonListStoreError';
  }
}

export interface JsonListFormat<T> {
  /** The list's key in the file, e.g. "rooms"; also names the file in errors ("rooms file"). */
  key: string;
  idOf(config: T): number;
  /** Rebuilds one stored entry, or says why it cannot be used. */
  restore(entry: unknown): T | { error: string };
}

export class JsonListStore<T> {
  /** What the file holds: only what was saved. */
  private readonly saved = new Map<number, T>();

  constructor(
    readonly path: string,
    private readonly format: JsonListFormat<T>,
  ) {}

  /** Reads the file; a missing file is an empty store, a corrupt one an error naming it. */
  load(): T[] {
    const what = `${this.format.key} file ${this.path}`;
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
      throw new JsonListStoreError(`${what}: ${(err as Error).message}`);
    }
    const list = isJsonObject(parsed) ? parsed[this.format.key] : undefined;
    if (!Array.isArray(list)) throw new JsonListStoreError(`${what}: expected {"${this.format.key}":[...]}`);
    this.saved.clear();
    for (const entry of list) {
      const config = this.format.restore(entry);
      if (isError(config)) throw new JsonListStoreError(`${what}: ${config.error}`);
      this.saved.set(this.format.idOf(config), config);
    }
    return [...this.saved.values()].map((c) => structuredClone(c));
  }

  has(id: number): boolean {
    return this.saved.has(id);
  }

  put(config: T): void {
    const next = new Map(this.saved);
    next.set(this.format.idOf(config), structuredClone(config));
    this.write(next);
  }

  remove(id: number): void {
    if (!this.saved.has(id)) return;
    const next = new Map(this.saved);
    next.delete(id);
    this.write(next);
  }

  /** Writes the file first and only then updates memory, so a failed write changes nothing. */
  private write(next: Map<number, T>): void {
    const text = `${JSON.stringify({ [this.format.key]: [...next.values()] }, null, 2)}\n`;
    try {
      writeOwnerOnlyAtomically(this.path, text);
    } catch (err) {
      throw new JsonListStoreError(`could not save ${this.format.key} file ${this.path}: ${(err as Error).message}`);
    }
    this.saved.clear();
    for (const [k, v] of next) this.saved.set(k, v);
  }
}

/** Rooms keyed by a positive integer `room` id (VideoRoom, TextRoom): `{"rooms":[…]}`. */
export class RoomListStore<T extends { room: number }> extends JsonListStore<T> {
  constructor(path: string, restore: (room: number, stored: JsonObject) => T) {
    super(path, {
      key: 'rooms',
      idOf: (config) => config.room,
      restore: (entry) => {
        if (!isJsonObject(entry) || typeof entry['room'] !== 'number' || !Number.isSafeInteger(entry['room']) || entry['room'] <= 0) {
          return { error: 'a room entry has no valid "room" id' };
        }
        return restore(entry['room'], entry);
      },
    });
  }
}

function isError<T>(value: T | { error: string }): value is { error: string } {
  return typeof value === 'object' && value !== null && 'error' in value && Object.keys(value).length === 1;
}
