// Every way a recorded VideoRoom publication ends closes its files through the one teardown
// (Publisher.stopPublishing → Recorder.stop), and janus-pp-rec accepts each file: unpublish
// (videoroom-record.test.ts), leave, Janus hangup, room destroy, session timeout, and SIGTERM
// of a ferry process; and a room's `enable_recording` on and off. Each publication sends about a second of real media.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { useOPUS, useVP8 } from 'werift';

import { VrClient, closeAll, publish, startVrFerry, withRoom, type WeriftPublisher } from '../videoroom-e2e/harness.js';
import { mediaRange } from '../helpers/ferry.js';
import { startFerryProcess } from '../helpers/ferryProcess.js';
import type { RTCPeerConnection } from 'werift';
import { convertAll, engineCounters, mjrFiles, recordingsDir, relayFfmpeg } from './harness.js';

const CODECS = { codecs: { audio: [useOPUS()], video: [useVP8()] } };

/** Both files of a publication convert: Opus audio, VP8 video, with what was sent in them. */
async function assertConverts(dir: string, what: string): Promise<void> {
  const files = mjrFiles(dir);
  assert.is(files.length, 2, `${what}: one file per stream (${files.join(', ')})`);
  const probes = await convertAll(files);
  const codecs = [...probes.values()].map((p) => p.codec).sort();
  assert.equal(codecs, ['opus', 'vp8'], what);
  for (const [f, p] of probes) assert.ok(p.frames > 0 && p.rtpPackets! > 0, `${what}: ${f} has media (${JSON.stringify(p)})`);
}

/** The engine's open recordings, read every 50 ms (at most `tries` times) until none is left. */
async function openRecordings(f: Parameters<typeof engineCounters>[0], tries: number): Promise<number> {
  let open = (await engineCounters(f))['recordingsOpen']!;
  for (let i = 1; i < tries && open !== 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
    open = (await engineCounters(f))['recordingsOpen']!;
  }
  return open;
}

async function recordedPublisher(f: Parameters<typeof publish>[0], room: number, peers: RTCPeerConnection[]): Promise<WeriftPublisher> {
  const pub = await publish(f, room, `p${room}`, peers, CODECS);
  await relayFfmpeg({ audio: pub.audio, video: pub.video }, 1);
  return pub;
}

test('leave, hangup and room destroy each close the files whole', async () => {
  const base = recordingsDir();
  const vr = await startVrFerry({ recordings: { dir: base } });
  const peers: RTCPeerConnection[] = [];
  try {
    const admin = await VrClient.open(vr.f);
    const endings: Array<[string, (pub: WeriftPublisher, room: number) => Promise<void>]> = [
      ['leave', async (pub) => void (await pub.client.call({ request: 'leave' }))],
      ['hangup', async (pub) => void (await pub.client.ws.request({ janus: 'hangup', session_id: pub.client.sessionId, handle_id: pub.client.handleId }))],
      ['destroy', async (_pub, room) => void (await admin.sync({ request: 'destroy', room }))],
    ];
    let room = 1810;
    for (const [what, end] of endings) {
      room++;
      const dir = `${base}/${what}`;
      await admin.sync({ request: 'create', room, publishers: 1, record: true, rec_dir: dir });
      const pub = await recordedPublisher(vr.f, room, peers);
      assert.is((await engineCounters(vr.f))['recordingsOpen'], 2, `${what}: recording`);
      await end(pub, room);
      assert.is(await openRecordings(vr.f, 100), 0, `${what} closed the files`);
      await assertConverts(dir, what);
    }
  } finally {
    await closeAll(peers);
    await vr.stop();
  }
});

test('enable_recording starts the files of a publisher already in the room and stops them whole', async () => {
  const dir = recordingsDir();
  await withRoom({ room: 1825, publishers: 1, secret: 's', rec_dir: dir }, async ({ vr, admin, peers }) => {
    const pub = await publish(vr.f, 1825, 'p1825', peers, CODECS);
    assert.is((await engineCounters(vr.f))['recordingsOpen'], 0, 'not recorded until asked');
    const started = await admin.sync({ request: 'enable_recording', room: 1825, secret: 's', record: true });
    assert.equal([started['videoroom'], started['record']], ['success', true]);
    const listed = started['recordings'] as { id: number; type: string }[];
    assert.equal(listed.map((r) => [r.id, r.type]).sort(), [[pub.id, 'audio'], [pub.id, 'video']], 'the answer lists the files it started');
    assert.is((await engineCounters(vr.f))['recordingsOpen'], 2);
    await relayFfmpeg({ audio: pub.audio, video: pub.video }, 1);
    const stopped = await admin.sync({ request: 'enable_recording', room: 1825, secret: 's', record: false });
    assert.equal([stopped['record'], stopped['recordings']], [false, []]);
    assert.is((await engineCounters(vr.f))['recordingsOpen'], 0, 'record: false closed the files');
    await assertConverts(dir, 'enable_recording');
  }, { recordings: { dir } });
});

test('a session that times out closes its publisher\'s files', async () => {
  const dir = recordingsDir();
  await withRoom({ room: 1820, publishers: 1, record: true }, async ({ vr, peers }) => {
    const pub = await recordedPublisher(vr.f, 1820, peers);
    // No keepalive from here on: the session times out.
    assert.is(await openRecordings(vr.f, 200), 0, 'the session timeout closed the files');
    assert.ok(pub.client.sessionId > 0);
    await assertConverts(dir, 'session timeout');
  }, { recordings: { dir }, general: { session_timeout: 2 } });
});

test('SIGTERM: a ferry process closes the files of a publisher still recording before it exits', async () => {
  const dir = recordingsDir();
  const proc = await startFerryProcess({ media: mediaRange(), recordings: { dir } }, { entry: 'source' });
  const peers: RTCPeerConnection[] = [];
  try {
    const admin = await VrClient.open(proc);
    await admin.sync({ request: 'create', room: 1830, publishers: 1, record: true });
    await recordedPublisher(proc, 1830, peers);
    await proc.stop(); // SIGTERM; rejects unless the process exits 0
    await assertConverts(dir, 'SIGTERM');
  } finally {
    await closeAll(peers);
    await proc.stop().catch(() => undefined);
  }
});

test.run();
