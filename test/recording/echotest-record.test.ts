// EchoTest recording with a werift peer: `record` + `filename` on the offer writes
// `<filename>-audio.mjr` and `<filename>-video.mjr` (listed in the answer and in Admin
// handle_info), `record: false` closes them, recording again starts new files, and the Janus
// hangup closes the last ones. Every file converts with janus-pp-rec; after the churn no file
// is left open.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MediaStreamTrack, useOPUS, useVP8 } from 'werift';

import { startFerry } from '../helpers/ferry.js';
import { closePeer, connectionState, loopbackPeer } from '../helpers/werift.js';
import { JanusClient } from '../streaming/harness.js';
import { convertAll, engineCounters, mjrFiles, recordingsDir, relayFfmpeg } from './harness.js';

test('EchoTest record, filename, record:false, record again, hangup: each file whole', async () => {
  const dir = recordingsDir();
  const f = await startFerry({ recordings: { dir } });
  const pc = loopbackPeer({ codecs: { audio: [useOPUS()], video: [useVP8()] } });
  const client = await JanusClient.open(f, 'janus.plugin.echotest');
  try {
    const message = (body: Record<string, unknown>, jsep?: Record<string, unknown>) => client.call(body, jsep);
    const audio = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
    const video = pc.addTransceiver(new MediaStreamTrack({ kind: 'video' }), { direction: 'sendrecv' });
    await pc.setLocalDescription(await pc.createOffer());
    const answered = await message({ audio: true, video: true, record: true, filename: 'first' }, { type: 'offer', sdp: pc.localDescription!.sdp });
    const listed = answered.data['recordings'] as { path: string; type: string }[];
    assert.equal(listed.map((r) => r.path).sort(), [`${dir}/first-audio.mjr`, `${dir}/first-video.mjr`], 'the answer lists the files');
    await pc.setRemoteDescription(answered.jsep as never);
    await connectionState(pc, 'connected');
    const senders = { audio: audio.sender, video: video.sender };
    await relayFfmpeg(senders, 1);

    const info = await f.admin.post(`/${client.sessionId}/${client.handleId}`, { janus: 'handle_info', admin_secret: f.config.auth.admin_secret });
    assert.is(info['info']['plugin_specific']['recordings'].length, 2, 'Admin handle_info lists them');
    const stopped = await message({ record: false });
    assert.equal(stopped.data, { echotest: 'event', result: 'ok' }, 'no file open any more');
    assert.is((await engineCounters(f))['recordingsOpen'], 0);

    for (const name of ['second', 'third']) {
      const again = await message({ record: true, filename: name });
      assert.is((again.data['recordings'] as unknown[]).length, 2, name);
      await relayFfmpeg(senders, 1);
      if (name === 'second') await message({ record: false });
    }
    const done = client.next((e) => e['janus'] === 'event' && e['plugindata']?.data?.result === 'done');
    await client.ws.request({ janus: 'hangup', session_id: client.sessionId, handle_id: client.handleId });
    await done;
    assert.is((await engineCounters(f))['recordingsOpen'], 0, 'the hangup closed the third pair');

    const files = mjrFiles(dir);
    assert.equal(files.map((p) => p.slice(dir.length + 1)), ['first-audio.mjr', 'first-video.mjr', 'second-audio.mjr', 'second-video.mjr', 'third-audio.mjr', 'third-video.mjr']);
    const probes = await convertAll(files);
    for (const [file, p] of probes) {
      assert.is(p.codec, file.includes('audio') ? 'opus' : 'vp8');
      assert.ok(p.frames > 0 && Math.abs(p.duration - 1) < 0.3, `${file}: ${JSON.stringify(p)}`);
    }
  } finally {
    await client.close();
    await closePeer(pc);
    await f.stop();
  }
});

test.run();
