/**
 * Recording tests' tools: real media into a werift publisher (Debian's ffmpeg encodes a VP8
 * test pattern and an Opus tone to RTP on loopback; each packet is re-sent through the werift
 * sender, optionally losing some), and Janus's own `janus-pp-rec` and ffprobe to judge the files.
 */
import { execFile } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { RtpPacket, type RTCRtpSender } from 'werift';

import { startFfmpeg } from '../streaming/harness.js';
import { sendRtp } from '../videoroom-e2e/harness.js';
import { rng } from '../helpers/rng.js';
import type { TestFerry } from '../helpers/ferry.js';

const run = promisify(execFile);

export function recordingsDir(): string {
  return mkdtempSync(join(tmpdir(), 'ferry-rec-'));
}

/** The `.mjr` files in a folder (recursively one level), sorted. */
export function mjrFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...readdirSync(p).filter((n) => n.endsWith('.mjr')).map((n) => join(p, n)));
    else if (name.endsWith('.mjr')) out.push(p);
  }
  return out.sort();
}

/**
 * Numbering per werift sender across relays: each ffmpeg run starts its own sequence numbers
 * and timestamps, which a second run through the same sender must continue (SRTP would take
 * lower sequence numbers for replays).
 */
const numbering = new WeakMap<RTCRtpSender, { seqOffset: number; tsOffset: number; lastSeq: number; lastTs: number; lastAt: number; run: number }>();
let relayRun = 0;

/** Continues `sender`'s numbering; the timestamp advances by the time that passed (`clockRate`), as a capturing sender's does. */
function continued(sender: RTCRtpSender, seq: number, ts: number, clockRate: number): { seq: number; ts: number } {
  let n = numbering.get(sender);
  const now = performance.now();
  if (!n || n.run !== relayRun) {
    const next = n ? { seq: (n.lastSeq + 1) & 0xffff, ts: (n.lastTs + Math.round(((now - n.lastAt) * clockRate) / 1000)) >>> 0 } : { seq, ts };
    n = { seqOffset: (next.seq - seq) & 0xffff, tsOffset: (next.ts - ts) >>> 0, lastSeq: 0, lastTs: 0, lastAt: now, run: relayRun };
    numbering.set(sender, n);
  }
  const out = { seq: (seq + n.seqOffset) & 0xffff, ts: (ts + n.tsOffset) >>> 0 };
  n.lastSeq = out.seq;
  n.lastTs = out.ts;
  n.lastAt = now;
  return out;
}

/** What a relay sent through the werift senders. */
export interface Relayed {
  audioPackets: number;
  videoPackets: number;
  /** Video frames whose every packet was sent (distinct RTP timestamps, none of whose packets was lost). */
  videoFramesComplete: number;
  videoFrames: number;
  dropped: number;
  /** When the first packet of each kind went to its sender (performance.now(), ms). */
  firstSentAt: { audio?: number; video?: number };
}

/**
 * Runs ffmpeg for `seconds` (real time) and re-sends what it encodes through `audio` / `video`
 * senders with ffmpeg's own sequence numbers, timestamps and markers; `loss` (0..1) drops that
 * share of packets, chosen by a seeded generator, before they reach the sender.
 */
export async function relayFfmpeg(senders: { audio?: RTCRtpSender; video?: RTCRtpSender }, seconds: number, options: { loss?: number; seed?: number } = {}): Promise<Relayed> {
  const random = rng(options.seed ?? 18);
  relayRun++;
  const loss = options.loss ?? 0;
  const out: Relayed = { audioPackets: 0, videoPackets: 0, videoFramesComplete: 0, videoFrames: 0, dropped: 0, firstSentAt: {} };
  const frames = new Map<number, boolean>();
  const sockets: Socket[] = [];
  const bind = async (sender: RTCRtpSender | undefined, kind: 'audio' | 'video'): Promise<number | undefined> => {
    if (!sender) return undefined;
    const socket = createSocket('udp4');
    sockets.push(socket);
    socket.on('message', (msg) => {
      if (msg.length < 12 || (msg[1]! & 0x7f) >= 72 && (msg[1]! & 0x7f) <= 76) return; // RTCP (RFC 5761 §4)
      const packet = RtpPacket.deSerialize(msg);
      const h = packet.header;
      if (kind === 'video') {
        out.videoPackets++;
        if (!frames.has(h.timestamp)) frames.set(h.timestamp, true);
      } else out.audioPackets++;
      if (random() < loss) {
        out.dropped++;
        if (kind === 'video') frames.set(h.timestamp, false);
        return;
      }
      out.firstSentAt[kind] ??= performance.now();
      const { seq, ts } = continued(sender, h.sequenceNumber, h.timestamp, kind === 'audio' ? 48_000 : 90_000);
      void sendRtp(sender, seq, ts, packet.payload, h.marker);
    });
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
    return socket.address().port;
  };
  const audioPort = await bind(senders.audio, 'audio');
  const videoPort = await bind(senders.video, 'video');
  const encoder = startFfmpeg({ ...(audioPort ? { audio: audioPort } : {}), ...(videoPort ? { video: videoPort } : {}) }, { seconds });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`ffmpeg did not end: ${encoder.stderr()}`)), seconds * 1000 + 15_000);
      encoder.process.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    // The last datagrams still in flight on loopback.
    await new Promise((r) => setTimeout(r, 100));
  } finally {
    await encoder.stop();
    for (const s of sockets) s.close();
  }
  out.videoFrames = frames.size;
  out.videoFramesComplete = [...frames.values()].filter(Boolean).length;
  return out;
}

/** janus-pp-rec converts `mjr` to `target` (.opus/.webm/.wav by extension); rejects when it fails. */
export async function janusPpRec(mjr: string, target: string): Promise<string> {
  const { stdout, stderr } = await run('janus-pp-rec', [mjr, target], { timeout: 60_000 });
  return stdout + stderr;
}

/** `janus-pp-rec --json` of a file: its header info. */
export async function mjrHeader(mjr: string): Promise<Record<string, unknown>> {
  const { stdout } = await run('janus-pp-rec', ['--json', mjr], { timeout: 10_000 });
  return JSON.parse(stdout) as Record<string, unknown>;
}

export interface Probe {
  codec: string;
  duration: number;
  frames: number;
  /** RTP packets janus-pp-rec counted in the .mjr ("Counted N RTP packets"). */
  rtpPackets?: number;
}

/** ffprobe's codec, container duration and decoded frame count (-count_frames) of the first stream. */
export async function probe(file: string): Promise<Probe> {
  const { stdout } = await run('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=codec_name,nb_read_frames:format=duration', '-of', 'json', file], { timeout: 60_000 });
  const j = JSON.parse(stdout) as { streams: { codec_name: string; nb_read_frames?: string }[]; format: { duration?: string } };
  const s = j.streams[0];
  if (!s) throw new Error(`no stream in ${file}`);
  return { codec: s.codec_name, duration: Number(j.format.duration ?? NaN), frames: Number(s.nb_read_frames ?? NaN) };
}

/** Converts every `.mjr` of `files` by kind (audio → .opus, video → .webm) and probes it. */
export async function convertAll(files: string[]): Promise<Map<string, Probe>> {
  const out = new Map<string, Probe>();
  for (const f of files) {
    const target = f.replace(/\.mjr$/, /-audio/.test(f) ? '.opus' : '.webm');
    const log = await janusPpRec(f, target);
    const counted = /Counted (\d+) RTP packets/.exec(log);
    out.set(f, { ...(await probe(target)), ...(counted ? { rtpPackets: Number(counted[1]) } : {}) });
  }
  return out;
}

/** The engine's counters from Admin `ferry_status` (recordingsOpen, recordingPackets, …). */
export async function engineCounters(f: Pick<TestFerry, 'admin' | 'config'>): Promise<Record<string, number>> {
  const r = (await f.admin.post('', { janus: 'ferry_status', admin_secret: f.config.auth.admin_secret })) as Record<string, any>;
  return r['status']['engine'] as Record<string, number>;
}
