// ferry-pp: a publisher's .mjr recordings to one WebM (Mediabunny's muxer), audio and video in
// sync. A werift publisher sends Opus alone for a second, then Opus and VP8 (Debian's ffmpeg
// encodes both); in the WebM ffprobe decodes every VP8 frame sent and the video starts as much
// later than the audio as it did on the wire. The sans-IO parts (ordering, VP8 frames) are
// checked on packets made here: wrap-around, reordering, repeats, a lost packet.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { useOPUS, useVP8 } from 'werift';

import { orderPackets, vp8Frames } from '../../src/media/RecordedFrames.js';
import { publish, withRoom } from '../videoroom-e2e/harness.js';
import { mjrFiles, recordingsDir, relayFfmpeg } from './harness.js';

const run = promisify(execFile);

function rtp(seq: number, ts: number, payload: Buffer, marker = false, ssrc = 7): Buffer {
  const h = Buffer.alloc(12);
  h[0] = 0x80;
  h[1] = (marker ? 0x80 : 0) | 96;
  h.writeUInt16BE(seq & 0xffff, 2);
  h.writeUInt32BE(ts >>> 0, 4);
  h.writeUInt32BE(ssrc, 8);
  return Buffer.concat([h, payload]);
}

/** A VP8 payload: descriptor (S bit when `start`) and frame bytes; a keyframe header when `key`. */
function vp8(start: boolean, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([start ? 0x10 : 0x00]), body]);
}
const KEY = Buffer.from([0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 0xaa]); // 320x240
const DELTA = Buffer.from([0x01, 0x02, 0x03]);

test('ordering: sequence numbers across wrap-around, reordered and repeated packets, one SSRC', () => {
  const frames = [65534, 65535, 1, 0, 1, 2].map((seq, i) => ({ ms: i, packet: rtp(seq, 4294967000 + i * 100, Buffer.from([seq & 0xff])) }));
  frames.push({ ms: 9, packet: rtp(3, 5, Buffer.from([9]), false, 8) }); // another SSRC: left out
  const ordered = orderPackets(frames);
  assert.equal(ordered.map((p) => p.seq), [65534, 65535, 65536, 65537, 65538]);
  assert.ok(ordered[4]!.ts > 2 ** 32, 'timestamps extended past wrap-around');
});

test('VP8 frames: partitions joined, a frame with a lost packet dropped, the keyframe size read', () => {
  const packets = orderPackets([
    rtp(10, 0, vp8(true, KEY.subarray(0, 6))),
    rtp(11, 0, vp8(false, KEY.subarray(6)), true),
    rtp(12, 3000, vp8(true, DELTA)),
    // 13 lost: the second frame cannot be decoded
    rtp(14, 3000, vp8(false, DELTA), true),
    rtp(15, 6000, vp8(true, DELTA), true),
  ].map((packet, i) => ({ ms: i, packet })));
  const frames = vp8Frames(packets);
  assert.equal(frames.map((f) => [f.ts, f.key]), [[0, true], [6000, false]]);
  assert.equal(frames[0]!.data, KEY);
  assert.equal([frames[0]!.width, frames[0]!.height], [320, 240]);
});

test('a publisher\'s audio and video recordings become one WebM in sync, every video frame in it', async () => {
  const dir = recordingsDir();
  await withRoom({ room: 1860, publishers: 1, record: true, rec_dir: dir }, async ({ vr, peers }) => {
    const pub = await publish(vr.f, 1860, 'pp', peers, { codecs: { audio: [useOPUS()], video: [useVP8()] } });
    const audioFirst = await relayFfmpeg({ audio: pub.audio }, 1);
    const both = await relayFfmpeg({ audio: pub.audio, video: pub.video }, 2);
    await pub.client.call({ request: 'unpublish' });
    const [audio, video] = mjrFiles(dir);
    assert.match(audio!, /-audio-0\.mjr$/);
    const out = `${dir}/pp.webm`;
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/ferry-pp.ts', out, audio!, video!], { timeout: 60_000 });
    const summary = JSON.parse(stdout) as { tracks: { kind: string; frames: number; start: number }[] };
    assert.ok(existsSync(out));
    const probed = await run('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=codec_name,nb_read_frames,start_time', '-of', 'json', out]);
    const streams = (JSON.parse(probed.stdout) as { streams: { codec_name: string; nb_read_frames: string; start_time: string }[] }).streams;
    const v = streams.find((s) => s.codec_name === 'vp8');
    const a = streams.find((s) => s.codec_name === 'opus');
    assert.ok(v && a, JSON.stringify(streams));
    assert.is(Number(v!.nb_read_frames), both.videoFrames, `decoded ${v!.nb_read_frames} of ${both.videoFrames} VP8 frames`);
    assert.ok(Number(a!.nb_read_frames) >= audioFirst.audioPackets + both.audioPackets - 2, `${a!.nb_read_frames} Opus frames`);
    // The video started later on the wire than the audio by this much; the file keeps it.
    const offset = (both.firstSentAt.video! - audioFirst.firstSentAt.audio!) / 1000;
    const inFile = Number(v!.start_time) - Number(a!.start_time);
    assert.ok(Math.abs(inFile - offset) < 0.1, `video starts ${inFile.toFixed(3)} s after the audio in the file, ${offset.toFixed(3)} s on the wire`);
    assert.ok(summary.tracks.length === 2);
  }, { recordings: { dir } });
});

test('ferry-pp refuses what it cannot export, with a message', async () => {
  const err = await run(process.execPath, ['--import', 'tsx', 'src/ferry-pp.ts', '/tmp/x.webm', '/nonexistent.mjr']).catch((e: { code: number; stderr: string }) => e);
  assert.is((err as { code: number }).code, 1);
  assert.match((err as { stderr: string }).stderr, /nonexistent\.mjr/);
});

test.run();
