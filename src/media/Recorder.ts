/**
 * Recordings: Janus `.mjr` files written natively (native/crates/engine/src/recorder.rs) from
 * the packets a media thread decrypts; no packet passes through JavaScript. The `Recorder`
 * owns every open file: `start` creates one (the file exists, with its folder, when it
 * returns), `stop` is the one way a file is closed (queued packets written first), and
 * `stopAll` runs it for whatever is still open at shutdown. A `RecordingSet` is one owner's
 * files (a publisher's streams, an EchoTest session, a SIP call's legs), stopped together by
 * that owner's single teardown.
 */
import { mkdirSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { EngineEvent } from './MediaEngine.js';

/** What a recording's file holds, as the engine takes it. */
export interface RecordingSpec {
  /** Engine source whose packets are recorded (-1 for data, which the plugin hands over). */
  source: number;
  /** The file, `.mjr` included. */
  path: string;
  kind: 'audio' | 'video' | 'data';
  /** ferry's codec name (codecNameOf): opus, pcmu, pcma, g722, vp8, vp9, h264, av1, h265. */
  codec: string;
  fmtp?: string;
  /** RTP header extensions the stream carries, kept in the header (`x`) for janus-pp-rec. */
  extensions?: { id: number; uri: string }[];
  /** The m-line, for listings. */
  mid?: string;
}

/** A recording as the plugins list it (request answers, Admin handle_info). */
export type RecordingDescription = {
  type: 'audio' | 'video' | 'data';
  codec: string;
  path: string;
  active: boolean;
  /** ms since the Unix epoch. */
  started: number;
  mid?: string;
  packets?: number;
  bytes?: number;
  error?: string;
};

export interface RecordingResult {
  packets: number;
  bytes: number;
  error?: string;
}

/** The engine calls recordings need (MediaEngine implements it). */
export interface RecordingEngine {
  startRecording(source: number, options: { path: string; kind: string; codec: string; fmtp?: string; extensions?: { id: number; uri: string }[] }): number;
  stopRecording(id: number): RecordingResult;
  startDataRecording(path: string, codec: string): number;
  recordData(id: number, message: Buffer): boolean;
  on(event: 'event', listener: (event: EngineEvent) => void): unknown;
}

/** Codecs janus-pp-rec converts (its names); others are not recorded. */
const RECORDABLE = new Set(['opus', 'multiopus', 'pcmu', 'pcma', 'g722', 'vp8', 'vp9', 'h264', 'av1', 'h265']);

export function recordable(codec: string | null | undefined): boolean {
  return codec !== null && codec !== undefined && RECORDABLE.has(codec.toLowerCase());
}

export class Recording {
  /** Set by the engine's 'recording-failed' event: the file keeps what was written before. */
  error: string | null = null;
  result: RecordingResult | null = null;
  readonly started = Date.now();
  /** Told of a write error (disk full, permissions) once. */
  onFailed: ((message: string) => void) | null = null;

  constructor(readonly id: number, readonly spec: RecordingSpec) {}

  get path(): string {
    return this.spec.path;
  }

  get active(): boolean {
    return this.result === null;
  }

  describe(): RecordingDescription {
    const out: RecordingDescription = { type: this.spec.kind, codec: this.spec.codec, path: this.spec.path, active: this.active, started: this.started };
    if (this.spec.mid !== undefined) out['mid'] = this.spec.mid;
    if (this.result) {
      out['packets'] = this.result.packets;
      out['bytes'] = this.result.bytes;
    }
    if (this.error) out['error'] = this.error;
    return out;
  }
}

export class Recorder {
  private readonly open = new Map<number, Recording>();
  /** Recordings started, and files that failed to write (the admin API and tests read them). */
  started = 0;
  failures = 0;

  private readonly protectedFolders: string[];

  /** `protectedFolders`: no file is written under these (Janus's `protected_folders`). */
  constructor(private readonly engine: RecordingEngine, readonly defaultDir: string, protectedFolders: readonly string[] = []) {
    this.protectedFolders = protectedFolders.filter((f) => f.length > 0).map((f) => resolve(f));
    engine.on('event', (event: EngineEvent) => {
      if (event.type !== 'recording-failed') return;
      const rec = this.open.get(event.recording);
      if (!rec || rec.error) return;
      this.failures++;
      rec.error = event.message;
      rec.onFailed?.(event.message);
    });
  }

  /** A folder from a request (relative ones under the default folder) made absolute. */
  folder(dir: string | null | undefined): string {
    if (!dir) return resolve(this.defaultDir);
    return isAbsolute(dir) ? dir : resolve(this.defaultDir, dir);
  }

  /** `<folder>/<base>.mjr`; a `base` with its own folder keeps it (as Janus's `filename`). */
  pathFor(dir: string | null | undefined, base: string): string {
    return isAbsolute(base) || dirname(base) !== '.' ? resolve(this.folder(null), `${base}.mjr`) : join(this.folder(dir), `${base}.mjr`);
  }

  /** Whether `path` lies under a protected folder. */
  isProtected(path: string): boolean {
    const p = resolve(path);
    return this.protectedFolders.some((f) => f === '/' || p === f || p.startsWith(`${f}/`));
  }

  /** Creates the file (and its folder) and starts feeding it; throws when it cannot. */
  start(spec: RecordingSpec): Recording {
    this.makeRoomFor(spec.path);
    const id = this.engine.startRecording(spec.source, {
      path: spec.path,
      kind: spec.kind,
      codec: spec.codec.toLowerCase(),
      ...(spec.fmtp !== undefined ? { fmtp: spec.fmtp } : {}),
      // Janus records one-byte ids only (RFC 8285 §4.2: 1..14).
      ...(spec.extensions?.length ? { extensions: spec.extensions.filter((e) => e.id >= 1 && e.id <= 14) } : {}),
    });
    return this.opened(new Recording(id, spec));
  }

  /**
   * A data-channel recording (Janus's `text` frames, which janus-pp-rec turns into .srt):
   * the plugin hands each message over with `writeData`.
   */
  startData(spec: { path: string; mid?: string }): Recording {
    this.makeRoomFor(spec.path);
    const id = this.engine.startDataRecording(spec.path, 'text');
    return this.opened(new Recording(id, { source: -1, path: spec.path, kind: 'data', codec: 'text', ...(spec.mid !== undefined ? { mid: spec.mid } : {}) }));
  }

  /** A file may go to `path` (not a protected folder) and its folder exists; throws otherwise. */
  private makeRoomFor(path: string): void {
    if (this.isProtected(path)) throw new Error(`${path} is in a protected folder (recordings.protected_folders)`);
    mkdirSync(dirname(path), { recursive: true });
  }

  private opened(rec: Recording): Recording {
    this.open.set(rec.id, rec);
    this.started++;
    return rec;
  }

  /** One message for a data recording; false when dropped (the writer behind, or too long). */
  writeData(rec: Recording, message: Buffer): boolean {
    if (!this.open.has(rec.id) || rec.spec.kind !== 'data') return false;
    return this.engine.recordData(rec.id, message);
  }

  /** Closes the file, queued packets written first. Idempotent. */
  stop(rec: Recording): RecordingResult | null {
    if (!this.open.delete(rec.id)) return rec.result;
    try {
      rec.result = this.engine.stopRecording(rec.id);
    } catch (err) {
      // The engine is closed (shutdown): it closed the file itself.
      rec.result = { packets: 0, bytes: 0, error: (err as Error).message };
    }
    if (rec.result.error && !rec.error) rec.error = rec.result.error;
    return rec.result;
  }

  /** Shutdown: closes whatever is still open. */
  stopAll(): void {
    for (const rec of [...this.open.values()]) this.stop(rec);
  }

  get openCount(): number {
    return this.open.size;
  }

  list(): Recording[] {
    return [...this.open.values()];
  }
}

/** One owner's recordings, stopped together. */
export class RecordingSet {
  private items: Recording[] = [];

  constructor(private readonly recorder: Recorder, private readonly onFailed: (rec: Recording, message: string) => void) {}

  start(spec: RecordingSpec): Recording {
    const rec = spec.kind === 'data' ? this.recorder.startData(spec) : this.recorder.start(spec);
    rec.onFailed = (message) => this.onFailed(rec, message);
    this.items.push(rec);
    return rec;
  }

  /** The open data recording, if any. */
  get data(): Recording | undefined {
    return this.items.find((r) => r.active && r.spec.kind === 'data');
  }

  /** Hands a data-channel message to the open data recording; false when there is none or it was dropped. */
  writeData(message: Buffer): boolean {
    const rec = this.data;
    return rec ? this.recorder.writeData(rec, message) : false;
  }

  /** Whether a stream's source is being recorded. */
  has(source: number): boolean {
    return this.items.some((r) => r.active && r.spec.source === source);
  }

  /** Closes every file of this owner; the list keeps them (with their results) until the next start. */
  stopAll(): void {
    for (const rec of this.items) this.recorder.stop(rec);
  }

  /** Closes the files, and forgets them. */
  clear(): void {
    this.stopAll();
    this.items = [];
  }

  get active(): boolean {
    return this.items.some((r) => r.active);
  }

  get recordings(): readonly Recording[] {
    return this.items;
  }

  describe(): RecordingDescription[] {
    return this.items.map((r) => r.describe());
  }
}
