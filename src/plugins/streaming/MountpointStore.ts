/**
 * Permanent mountpoints on disk, kept the way the VideoRoom keeps permanent
 * rooms: JSON `{"mountpoints":[MountpointConfig…]}`, every change written to
 * a temporary file in the same directory, fsynced and renamed over the old
 * one (rename(2) is atomic within a file system, so a crash leaves the old or
 * the new file, never a torn one), owner-only because secrets and PINs are in
 * it in plain text.
 */
import { readFileSync } from 'node:fs';
import { writeOwnerOnlyAtomically } from '../../core/AtomicFile.js';
import { isJsonObject, type JsonObject, type JsonValue } from '../../core/Json.js';
import { DEFAULT_COLLISION_MS, type MediaConfig, type MountpointConfig } from './Mountpoint.js';

export class MountpointStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MountpointStoreError';
  }
}

export class MountpointStore {
  private readonly saved = new Map<number, MountpointConfig>();

  constructor(readonly path: string) {}

  /** Reads the file; a missing file is an empty store, a corrupt one an error naming it. */
  load(): MountpointConfig[] {
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
      throw new MountpointStoreError(`mountpoints file ${this.path}: ${(err as Error).message}`);
    }
    if (!isJsonObject(parsed) || !Array.isArray(parsed['mountpoints'])) {
      throw new MountpointStoreError(`mountpoints file ${this.path}: expected {"mountpoints":[...]}`);
    }
    this.saved.clear();
    for (const entry of parsed['mountpoints']) {
      const config = restore(entry);
      if (!config) throw new MountpointStoreError(`mountpoints file ${this.path}: an entry has no valid "id" or "media"`);
      this.saved.set(config.id, config);
    }
    return [...this.saved.values()].map((c) => structuredClone(c));
  }

  put(config: MountpointConfig): void {
    const next = new Map(this.saved);
    next.set(config.id, structuredClone(config));
    this.write(next);
  }

  remove(id: number): void {
    if (!this.saved.has(id)) return;
    const next = new Map(this.saved);
    next.delete(id);
    this.write(next);
  }

  /** Writes the file first and only then updates memory, so a failed write changes nothing. */
  private write(next: Map<number, MountpointConfig>): void {
    const text = `${JSON.stringify({ mountpoints: [...next.values()] }, null, 2)}\n`;
    try {
      writeOwnerOnlyAtomically(this.path, text);
    } catch (err) {
      throw new MountpointStoreError(`could not save mountpoints file ${this.path}: ${(err as Error).message}`);
    }
    this.saved.clear();
    for (const [k, v] of next) this.saved.set(k, v);
  }
}

const str = (o: JsonObject, k: string): string | undefined => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
const int = (v: JsonValue | undefined): number | undefined => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined);

/** Rebuilds a stored configuration, defaults for what is absent; null when it is unusable. */
function restore(entry: unknown): MountpointConfig | null {
  if (!isJsonObject(entry)) return null;
  const id = int(entry['id']);
  if (id === undefined || id === 0 || !Array.isArray(entry['media'])) return null;
  const media: MediaConfig[] = [];
  for (const m of entry['media']) {
    if (!isJsonObject(m)) return null;
    const type = m['type'];
    const mid = str(m, 'mid');
    const codec = str(m, 'codec');
    const pt = int(m['pt']);
    const ports = Array.isArray(m['ports']) ? m['ports'].map(int) : [];
    if ((type !== 'audio' && type !== 'video') || !mid || !codec || pt === undefined || ports.length === 0 || ports.some((p) => p === undefined)) return null;
    const restored: MediaConfig = { type, mid, label: str(m, 'label') ?? type, codec, pt, ports: ports as number[], simulcast: m['simulcast'] === true };
    const msid = str(m, 'msid');
    if (msid !== undefined) restored.msid = msid;
    const fmtp = str(m, 'fmtp');
    if (fmtp !== undefined) restored.fmtp = fmtp;
    const rtcpport = int(m['rtcpport']);
    if (rtcpport !== undefined) restored.rtcpport = rtcpport;
    media.push(restored);
  }
  const config: MountpointConfig = {
    id,
    name: str(entry, 'name') ?? `mp-${id}`,
    description: str(entry, 'description') ?? `mp-${id}`,
    is_private: entry['is_private'] === true,
    enabled: entry['enabled'] !== false,
    collision: int(entry['collision']) ?? DEFAULT_COLLISION_MS,
    media,
  };
  for (const key of ['metadata', 'secret', 'pin', 'srtpcrypto'] as const) {
    const v = str(entry, key);
    if (v !== undefined) config[key] = v;
  }
  const suite = entry['srtpsuite'];
  if (suite === 32 || suite === 80) config.srtpsuite = suite;
  return config;
}
