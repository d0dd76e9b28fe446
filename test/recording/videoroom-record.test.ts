// VideoRoom recording end to end: a werift publisher sends what Debian's ffmpeg encodes (VP8
// test pattern, Opus tone) for 10 s into a room created with `record: true`; the native writer
// makes one `.mjr` per stream, Janus's janus-pp-rec turns them into .opus and .webm, and ffprobe
// decodes them: codec, duration (within 5 % of 10 s) and every video frame sent. A second run
// loses 5 % of the packets in the test's own sender: the files still convert, with gaps.
import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, openSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { useAudioLevelIndication, useOPUS, useVP8 } from 'werift';

import { VrClient, openClientAndPeer, publish, withRoom } from '../videoroom-e2e/harness.js';
import { channelOpen } from '../datachannels/helpers.js';
import { connectionState } from '../helpers/werift.js';
import { convertAll, engineCounters, janusPpRec, mjrFiles, mjrHeader, recordingsDir, relayFfmpeg } from './harness.js';

const SECONDS = 10;
const CODECS = { codecs: { audio: [useOPUS()], video: [useVP8()] } };

test('a 10 s Opus + VP8 publication is recorded per stream and janus-pp-rec converts it: codecs, duration, every frame', async () => {
  const dir = recordingsDir();
  await withRoom({ room: 1801, publishers: 2, record: true, rec_dir: dir }, async ({ vr, peers }) => {
    const pub = await publish(vr.f, 1801, 'recorded', peers, { ...CODECS, headerExtensions: { audio: [useAudioLevelIndication()] } });
    const admin = await vr.f.admin.post(`/${pub.client.sessionId}/${pub.client.handleId}`, { janus: 'handle_info', admin_secret: vr.f.config.auth.admin_secret });
    const listed = (admin['info'] as Record<string, Record<string, unknown>>)['plugin_specific']!['recordings'] as { path: string; type: string; codec: string; active: boolean }[];
    assert.equal(listed.map((r) => [r.type, r.codec, r.active]), [['audio', 'opus', true], ['video', 'vp8', true]], 'Admin handle_info lists the open files');
    const files = mjrFiles(dir);
    assert.equal(files, listed.map((r) => r.path).sort(), 'one file per stream, where Admin says');
    for (const f of files) assert.match(f, new RegExp(`/videoroom-1801-user-${pub.id}-\\d{16}-(audio-0|video-1)\\.mjr$`), 'named as Janus names them');

    const sent = await relayFfmpeg({ audio: pub.audio, video: pub.video }, SECONDS);
    const unpublished = await pub.client.call({ request: 'unpublish' });
    assert.equal(unpublished.data['unpublished'], 'ok');
    const engine = await engineCounters(vr.f);
    assert.equal(engine['recordingsOpen'], 0, 'unpublish closed the files');
    assert.equal(engine['recordingDropped'], 0, 'the writer kept up');
    assert.ok(engine['recordingPackets']! >= sent.audioPackets + sent.videoPackets - 5, `written ${engine['recordingPackets']} of ${sent.audioPackets + sent.videoPackets}`);

    const header = await mjrHeader(files.find((f) => f.includes('-video-'))!);
    assert.equal([header['t'], header['c']], ['v', 'vp8']);
    // The extensions ferry's answer accepted on the audio m-line (RFC 6464 audio level), in
    // the header as janus-pp-rec reads them.
    const audioHeader = await mjrHeader(files.find((f) => f.includes('-audio-'))!);
    const extmaps = [...pub.answer.split('m=video')[0]!.split('m=audio')[1]!.matchAll(/^a=extmap:(\d+) (\S+)/gm)].map((m) => [m[1], m[2]]);
    assert.ok(extmaps.some(([, uri]) => uri === 'urn:ietf:params:rtp-hdrext:ssrc-audio-level'), pub.answer);
    assert.equal(Object.entries((audioHeader['x'] ?? {}) as Record<string, string>), extmaps, `header ${JSON.stringify(audioHeader)}`);
    assert.ok(typeof header['s'] === 'number' && typeof header['u'] === 'number' && (header['u'] as number) >= (header['s'] as number));

    const probes = await convertAll(files);
    const [audio, video] = [...probes.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, p]) => p);
    assert.equal(audio!.codec, 'opus');
    assert.equal(video!.codec, 'vp8');
    for (const p of [audio!, video!]) assert.ok(Math.abs(p.duration - SECONDS) <= SECONDS * 0.05, `duration ${p.duration} s within 5 % of ${SECONDS} s`);
    assert.equal(video!.frames, sent.videoFrames, `decoded ${video!.frames} frames of the ${sent.videoFrames} sent`);
    assert.ok(audio!.frames >= sent.audioPackets - 1, `decoded ${audio!.frames} Opus frames of ${sent.audioPackets} sent`);
  }, { recordings: { dir } });
});

test('5 % of the packets lost on the way in: the recording converts, with gaps, and nothing crashes', async () => {
  const dir = recordingsDir();
  await withRoom({ room: 1802, publishers: 2, rec_dir: dir }, async ({ vr, peers }) => {
    const pub = await publish(vr.f, 1802, 'lossy', peers, CODECS);
    // The publisher asks for its own recording (configure record + filename); the answer lists the files.
    const configured = await pub.client.call({ request: 'configure', record: true, filename: 'lossy' });
    const listed = configured.data['recordings'] as { path: string }[];
    assert.equal(listed.map((r) => r.path).sort(), [`${dir}/lossy-audio-0.mjr`, `${dir}/lossy-video-1.mjr`]);
    const sent = await relayFfmpeg({ audio: pub.audio, video: pub.video }, 3, { loss: 0.05, seed: 5 });
    assert.ok(sent.dropped > 0, 'the sender lost packets');
    const stopped = await pub.client.call({ request: 'configure', record: false });
    assert.equal(stopped.data['recordings'], undefined, 'record: false closed them');
    const probes = await convertAll(mjrFiles(dir));
    const video = [...probes.entries()].find(([f]) => f.includes('video'))![1];
    const audio = [...probes.entries()].find(([f]) => f.includes('audio'))![1];
    assert.equal([audio.codec, video.codec], ['opus', 'vp8']);
    assert.ok(video.frames > 0 && video.frames <= sent.videoFrames, `decoded ${video.frames} of ${sent.videoFrames} frames`);
    // What reached ferry is what is in the files (the lost packets are gaps janus-pp-rec fills).
    const received = sent.audioPackets + sent.videoPackets - sent.dropped;
    assert.ok(audio.rtpPackets! + video.rtpPackets! <= received && audio.rtpPackets! + video.rtpPackets! >= received - 5, `${audio.rtpPackets} + ${video.rtpPackets} packets recorded of ${received} received`);
    assert.ok(audio.rtpPackets! < sent.audioPackets, 'the audio file has gaps');
    assert.ok(Math.abs(audio.duration - 3) < 0.3, `audio ${audio.duration} s`);
    // Still healthy: the publisher can record again.
    const again = await pub.client.call({ request: 'configure', record: true, filename: 'again' });
    assert.equal((again.data['recordings'] as unknown[]).length, 2);
    const watcher = await VrClient.open(vr.f);
    await watcher.close();
  }, { recordings: { dir } });
});

test('a publisher\'s data channel: its text messages in a -data- file janus-pp-rec turns into subtitles', async () => {
  const dir = recordingsDir();
  await withRoom({ room: 1804, publishers: 2, record: true, rec_dir: dir }, async ({ vr, peers }) => {
    const { client, pc } = await openClientAndPeer(vr.f, peers);
    const dc = pc.createDataChannel('JanusDataChannel');
    await pc.setLocalDescription(await pc.createOffer());
    const joined = await client.call({ request: 'joinandconfigure', ptype: 'publisher', room: 1804, display: 'chat' }, { type: 'offer', sdp: pc.localDescription!.sdp });
    await pc.setRemoteDescription(joined.jsep as never);
    await connectionState(pc, 'connected');
    await channelOpen(dc);
    const texts = ['hello', 'from the', 'recorded chat'];
    for (const t of texts) {
      dc.send(t);
      dc.send(Buffer.from([0, 1, 2])); // binary: not recorded, as in Janus
      await new Promise((r) => setTimeout(r, 100));
    }
    // Bounded wait until ferry has all three (SCTP delivers them in order, after the sends return).
    for (let i = 0; i < 100 && (await engineCounters(vr.f))['recordingPackets']! < texts.length; i++) await new Promise((r) => setTimeout(r, 20));
    await client.call({ request: 'unpublish' });
    const files = mjrFiles(dir);
    assert.is(files.length, 1);
    assert.match(files[0]!, new RegExp(`/videoroom-1804-user-${joined.data['id']}-\\d{16}-data-0\\.mjr$`));
    assert.equal([(await mjrHeader(files[0]!))['t'], (await mjrHeader(files[0]!))['c']], ['d', 'text']);
    const srt = files[0]!.replace(/\.mjr$/, '.srt');
    await janusPpRec(files[0]!, srt);
    const subtitles = readFileSync(srt, 'utf8');
    assert.equal(texts.filter((t) => subtitles.includes(t)), texts, subtitles);
    assert.is((subtitles.match(/-->/g) ?? []).length, texts.length, 'one cue per text message');
  }, { recordings: { dir } });
});

test('a full disk, a write refused later, a folder that cannot be made, a protected folder: error events to the publisher, counters, no crash', async () => {
  const dir = recordingsDir();
  // "full": its audio file's name leads to /dev/full, which opens and refuses every write (ENOSPC).
  symlinkSync('/dev/full', `${dir}/full-audio-0.mjr`);
  // "pipe": its audio file is a FIFO whose reader goes away after the header: later writes fail (EPIPE).
  execFileSync('mkfifo', [`${dir}/pipe-audio-0.mjr`]);
  const reader = openSync(`${dir}/pipe-audio-0.mjr`, constants.O_RDONLY | constants.O_NONBLOCK);
  writeFileSync(`${dir}/not-a-folder`, '');
  await withRoom({ room: 1803, publishers: 2 }, async ({ vr, peers }) => {
    const pub = await publish(vr.f, 1803, 'full', peers, CODECS);
    const errorEvent = (pattern: RegExp) => pub.client.ws.nextEvent((e) => pattern.test(String(e['plugindata']?.data?.error ?? '')), 15_000);

    // Disk full at the start: the header cannot be written, the stream is reported at once.
    const full = errorEvent(/Could not record stream 0: .*No space left/);
    const configured = await pub.client.call({ request: 'configure', record: true, filename: 'full' });
    assert.equal((configured.data['recordings'] as { type: string }[]).map((r) => r.type), ['video'], 'the video file opened');
    assert.is((await full)['plugindata'].data['error_code'], 499);
    assert.is((await engineCounters(vr.f))['recordingWriteErrors'], 1);
    await relayFfmpeg({ audio: pub.audio, video: pub.video }, 1);
    await pub.client.call({ request: 'configure', record: false });
    const video = [...(await convertAll([`${dir}/full-video-1.mjr`])).values()][0]!;
    assert.is(video.codec, 'vp8', 'the other stream recorded and converts');

    // A write refused later (the FIFO's reader gone): the writer reports it once, counts it.
    const refused = errorEvent(/Recording .*pipe-audio-0\.mjr failed/);
    await pub.client.call({ request: 'configure', record: true, filename: 'pipe' });
    closeSync(reader);
    await relayFfmpeg({ audio: pub.audio, video: pub.video }, 1);
    assert.is((await refused)['plugindata'].data['error_code'], 499);
    assert.is((await engineCounters(vr.f))['recordingWriteErrors'], 2);
    await pub.client.call({ request: 'configure', record: false });
    assert.is((await engineCounters(vr.f))['recordingsOpen'], 0);

    // A filename whose folder cannot be made: the request is answered, the stream reported.
    const notified = errorEvent(/Could not record stream/);
    await pub.client.call({ request: 'configure', record: true, filename: `${dir}/not-a-folder/x` });
    assert.match((await notified)['plugindata'].data['error'], /not-a-folder/);
    assert.is((await engineCounters(vr.f))['recordingsOpen'], 0);
    // Nothing is written under a protected folder (recordings.protected_folders), however named.
    const guarded = errorEvent(/protected folder/);
    await pub.client.call({ request: 'configure', record: false });
    await pub.client.call({ request: 'configure', record: true, filename: `${dir}/../../etc/ferry-recording` });
    assert.match((await guarded)['plugindata'].data['error'], /\/etc\/ferry-recording-(audio|video)/);
    assert.not.ok(existsSync('/etc/ferry-recording-audio-0.mjr'));
  }, { recordings: { dir } });
});

test.run();
