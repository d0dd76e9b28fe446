/**
 * One WebM from a publisher's recordings (one `.mjr` per stream), audio and video in sync:
 * the container is Mediabunny's (a maintained muxer package), the frames come from
 * RecordedFrames.ts. Sync: each file's header says when its first packet arrived (`u`, wall
 * clock, µs); a frame's time is that moment plus its RTP timestamp's distance from the first
 * packet's, so streams that started at different moments keep their offset. Opus and VP8.
 */
import { BufferTarget, EncodedAudioPacketSource, EncodedPacket, EncodedVideoPacketSource, Output, WebMOutputFormat } from 'mediabunny';

import type { MjrRecording } from './MjrFile.js';
import { opusFrames, orderPackets, vp8Frames, type Frame, type RtpView } from './RecordedFrames.js';

export interface ExportedTrack {
  kind: 'audio' | 'video';
  codec: string;
  frames: number;
  /** Seconds from the start of the file to this track's first frame. */
  start: number;
  /** Seconds from its first frame to its last. */
  duration: number;
  /** Frames left out: VP8 frames before the first keyframe, or going back in time. */
  skipped: number;
}

interface Track {
  kind: 'audio' | 'video';
  codec: string;
  frames: Frame[];
  /** Seconds of each frame on the common timeline. */
  times: number[];
  skipped: number;
}

const CLOCK = { opus: 48_000, vp8: 90_000 } as const;

/** The frames of one recording with their times on the common timeline (origin: `originUs`). */
function track(rec: MjrRecording, originUs: number): Track {
  const codec = rec.info.c.toLowerCase();
  if (codec !== 'opus' && codec !== 'vp8') throw new Error(`ferry-pp exports Opus and VP8 (this recording is ${rec.info.c})`);
  const packets: RtpView[] = orderPackets(rec.frames);
  if (packets.length === 0) throw new Error(`the ${codec} recording holds no RTP packet`);
  // The first packet to arrive is the one the header's `u` time is of.
  const first = packets.reduce((a, b) => (b.ms < a.ms ? b : a));
  let frames = codec === 'opus' ? opusFrames(packets) : vp8Frames(packets);
  let skipped = 0;
  if (codec === 'vp8') {
    const key = frames.findIndex((f) => f.key);
    skipped = key < 0 ? frames.length : key;
    frames = key < 0 ? [] : frames.slice(key);
  }
  const times: number[] = [];
  const kept: Frame[] = [];
  for (const f of frames) {
    const t = (rec.info.u - originUs) / 1e6 + (f.ts - first.ts) / CLOCK[codec];
    if (t < 0 || (times.length && t < times[times.length - 1]!)) {
      skipped++;
      continue;
    }
    kept.push(f);
    times.push(t);
  }
  return { kind: codec === 'opus' ? 'audio' : 'video', codec, frames: kept, times, skipped };
}

/** Muxes the recordings (at most one audio and one video) into one WebM file's bytes. */
export async function exportWebm(recordings: MjrRecording[]): Promise<{ webm: Uint8Array; tracks: ExportedTrack[] }> {
  const media = recordings.filter((r) => r.info.t === 'a' || r.info.t === 'v');
  if (media.length === 0 || media.filter((r) => r.info.t === 'a').length > 1 || media.filter((r) => r.info.t === 'v').length > 1) {
    throw new Error('give one audio and/or one video recording of the same publisher');
  }
  const origin = Math.min(...media.map((r) => r.info.u));
  const tracks = media.map((r) => track(r, origin));
  const output = new Output({ format: new WebMOutputFormat(), target: new BufferTarget() });
  const sources = tracks.map((t) => {
    if (t.kind === 'video') {
      const source = new EncodedVideoPacketSource('vp8');
      output.addVideoTrack(source);
      return source;
    }
    const source = new EncodedAudioPacketSource('opus');
    output.addAudioTrack(source);
    return source;
  });
  await output.start();
  // Interleaved by time, as a player reads them.
  const order = tracks.flatMap((t, ti) => t.times.map((time, fi) => ({ time, ti, fi }))).sort((a, b) => a.time - b.time || a.ti - b.ti);
  const started = tracks.map(() => false);
  for (const { time, ti, fi } of order) {
    const t = tracks[ti]!;
    const f = t.frames[fi]!;
    const next = t.times[fi + 1];
    const duration = next !== undefined ? next - time : t.kind === 'audio' ? 0.02 : 1 / 30;
    const packet = new EncodedPacket(f.data, f.key ? 'key' : 'delta', time, Math.max(0, duration));
    if (t.kind === 'video') {
      const meta = started[ti] ? undefined : { decoderConfig: { codec: 'vp8', codedWidth: f.width ?? 640, codedHeight: f.height ?? 480 } };
      await (sources[ti] as EncodedVideoPacketSource).add(packet, meta);
    } else {
      const meta = started[ti] ? undefined : { decoderConfig: { codec: 'opus', numberOfChannels: 2, sampleRate: 48_000 } };
      await (sources[ti] as EncodedAudioPacketSource).add(packet, meta);
    }
    started[ti] = true;
  }
  await output.finalize();
  const buffer = (output.target as BufferTarget).buffer;
  if (!buffer) throw new Error('the muxer wrote nothing');
  return {
    webm: new Uint8Array(buffer),
    tracks: tracks.map((t) => ({
      kind: t.kind,
      codec: t.codec,
      frames: t.frames.length,
      start: t.times[0] ?? 0,
      duration: t.times.length ? t.times[t.times.length - 1]! - t.times[0]! : 0,
      skipped: t.skipped,
    })),
  };
}
