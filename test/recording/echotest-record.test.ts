// EchoTest recording with a werift peer: `record` + `filename` on the offer writes
// `<filename>-audio.mjr` and `<filename>-video.mjr` (listed in the answer and in Admin
// handle_info), `record: false` closes them, recording again starts new files, and the Janus
// hangup closes the last ones. Every file converts with janus-pp-rec; after the churn no file
// is left open.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MediaStreamTrack, useOPUS, useVP8 } from 'werift';

import { startFerry } from '../helpers/ferry.js';
import { JanusWs } from '../helpers/http.js';
import { closePeer, connectionState, loopbackPeer } from '../helpers/werift.js';
import { convertAll, engineCounters, mjrFiles, recordingsDir, relayFfmpeg } from './harness.js';

test('EchoTest record, filename, record:false, record again, hangup: each file whole', async () => {
  const dir = recordingsDir();
  const f = await startFerry({ recordings: { dir } });
  const pc = loopbackPeer({ codecs: { audio: [useOPUS()], video: [useVP8()] } });
  const ws = await JanusWs.connect(f.wsUrl);
  try {
    const session = (await ws.request({ janus: 'create' }))['data'].id as number;
    const handle = (await ws.request({ janus: 'attach', session_id: session, plugin: 'janus.plugin.echotest' }))['data'].id as number;
    const message = async (body: Record<string, unknown>, jsep?: unknown) => {
      const transaction = `t${Math.random()}`;
      const event = ws.nextEvent((e) => e['transaction'] === transaction && e['janus'] === 'event', 10_000);
      await ws.request({ janus: 'message', session_id: session, handle_id: handle, body, transaction, ...(jsep ? { jsep } : {}) });
      return event;
    };
    const audio = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
    const video = pc.addTransceiver(new MediaStreamTrack({ kind: 'video' }), { direction: 'sendrecv' });
    await pc.setLocalDescription(await pc.createOffer());
    const answered = await message({ audio: true, video: true, record: true, filename: 'first' }, { type: 'offer', sdp: pc.localDescription!.sdp });
    const listed = answered['plugindata'].data['recordings'] as { path: string; type: string }[];
    assert.equal(listed.map((r) => r.path).sort(), [`${dir}/first-audio.mjr`, `${dir}/first-video.mjr`], 'the answer lists the files');
    await pc.setRemoteDescription(answered['jsep']);
    await connectionState(pc, 'connected');
    const senders = { audio: audio.sender, video: video.sender };
    await relayFfmpeg(senders, 1);

    const info = await f.admin.post(`/${session}/${handle}`, { janus: 'handle_info', admin_secret: f.config.auth.admin_secret });
    assert.is(info['info']['plugin_specific']['recordings'].length, 2, 'Admin handle_info lists them');
    const stopped = await message({ record: false });
    assert.equal(stopped['plugindata'].data, { echotest: 'event', result: 'ok' }, 'no file open any more');
    assert.is((await engineCounters(f))['recordingsOpen'], 0);

    for (const name of ['second', 'third']) {
      const again = await message({ record: true, filename: name });
      assert.is((again['plugindata'].data['recordings'] as unknown[]).length, 2, name);
      await relayFfmpeg(senders, 1);
      if (name === 'second') await message({ record: false });
    }
    await ws.request({ janus: 'hangup', session_id: session, handle_id: handle });
    await ws.nextEvent((e) => e['janus'] === 'event' && e['plugindata']?.data?.result === 'done', 10_000);
    assert.is((await engineCounters(f))['recordingsOpen'], 0, 'the hangup closed the third pair');

    const files = mjrFiles(dir);
    assert.equal(files.map((p) => p.slice(dir.length + 1)), ['first-audio.mjr', 'first-video.mjr', 'second-audio.mjr', 'second-video.mjr', 'third-audio.mjr', 'third-video.mjr']);
    const probes = await convertAll(files);
    for (const [file, p] of probes) {
      assert.is(p.codec, file.includes('audio') ? 'opus' : 'vp8');
      assert.ok(p.frames > 0 && Math.abs(p.duration - 1) < 0.3, `${file}: ${JSON.stringify(p)}`);
    }
  } finally {
    await ws.close();
    await closePeer(pc);
    await f.stop();
  }
});

test.run();
