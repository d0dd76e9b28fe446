// The Streaming plugin's requests as janus_streaming.c answers them: shapes of created / list /
// info / edited / destroyed, its error codes, admin_key, secrets and PINs, permanent mountpoints
// kept in the mountpoints file (0600) across restarts, and the per-client port quota.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { mediaRange } from '../helpers/ferry.js';
import { JanusClient, startStreamingFerry } from './harness.js';

const VIDEO = { type: 'video', mid: 'v', codec: 'vp8', pt: 100, port: 0 };
const AUDIO = { type: 'audio', mid: 'a', codec: 'opus', pt: 111, port: 0 };

test('create, list, info, edit, enable, disable, destroy: Janus shapes and codes', async () => {
  const st = await startStreamingFerry();
  try {
    const c = await JanusClient.open(st.f);
    const err = async (body: Record<string, unknown>) => {
      const r = await c.sync(body);
      return [r['error_code'], r['error']];
    };
    assert.equal((await err({ request: 'create' }))[0], 453, 'type is required');
    assert.equal(await err({ request: 'create', type: 'rtsp' }), [454, "Can't create 'rtsp' mountpoint: ferry only relays 'rtp' mountpoints"]);
    assert.equal((await err({ request: 'create', type: 'rtp' }))[0], 456, 'no media');
    assert.equal((await err({ request: 'create', type: 'rtp', media: [{ type: 'video', mid: 'v', codec: 'mpeg2' }] }))[0], 454);
    assert.equal((await err({ request: 'create', type: 'rtp', media: [{ type: 'audio', mid: 'a', codec: 'vp8' }] }))[0], 454, 'a video codec on audio');
    assert.equal((await err({ request: 'create', type: 'rtp', media: [{ type: 'data', mid: 'd' }] }))[0], 456);
    assert.equal((await err({ request: 'create', type: 'rtp', media: [VIDEO, VIDEO] }))[0], 456, 'duplicate mid');
    assert.equal((await err({ request: 'create', type: 'rtp', media: [{ ...VIDEO, pt: 72 }] }))[0], 454, 'pt in RTCP range');
    assert.equal((await err({ request: 'create', type: 'rtp', media: [{ ...VIDEO, port: 5004 }] }))[0], 456, 'a port outside the media range');
    assert.equal((await err({ request: 'create', type: 'rtp', media: [VIDEO], permanent: true }))[0], 470, 'no mountpoints file');
    assert.equal((await err({ request: 'create', type: 'rtp', media: [VIDEO], srtpsuite: 80 }))[0], 453, 'srtpcrypto missing');
    assert.equal(st.f.ferry.ports.leased, 0, 'no refused create kept a port');
    assert.equal((await err({ request: 'nonsense' }))[0], 452);

    const created = await c.sync({ request: 'create', type: 'rtp', id: 77, description: 'cam', metadata: 'm', secret: 'sec', pin: 'pin', media: [AUDIO, { ...VIDEO, msid: 'cam video' }] });
    const ports = created['stream'].ports;
    assert.equal(created, {
      streaming: 'created', created: 'mp-77', permanent: false,
      stream: { id: 77, type: 'live', description: 'cam', is_private: false, ports: [{ type: 'audio', mid: 'a', port: ports[0].port }, { type: 'video', mid: 'v', msid: 'cam video', port: ports[1].port }] },
    });
    assert.equal((await err({ request: 'create', type: 'rtp', id: 77, media: [VIDEO] }))[0], 456, 'the id is taken');
    await c.sync({ request: 'create', type: 'rtp', id: 78, is_private: true, media: [VIDEO] });
    const list = await c.sync({ request: 'list' });
    assert.equal(list, { streaming: 'list', list: [{ id: 77, type: 'live', description: 'cam', metadata: 'm', enabled: true, media: [{ mid: 'a', label: 'audio', type: 'audio' }, { mid: 'v', label: 'video', type: 'video', msid: 'cam video' }] }] }, 'private mountpoints are not listed');
    const publicInfo = (await c.sync({ request: 'info', id: 77 }))['info'];
    assert.equal(publicInfo['media'][1], { mid: 'v', mindex: 1, type: 'video', label: 'video', msid: 'cam video', pt: 100, codec: 'vp8', rtpmap: 'VP8/90000' }, 'no ports without the secret');
    assert.not.ok('secret' in publicInfo);
    const info = (await c.sync({ request: 'info', id: 77, secret: 'sec' }))['info'];
    assert.equal([info['secret'], info['pin'], info['is_private'], info['viewers'], info['enabled'], info['type']], ['sec', 'pin', false, 0, true, 'live']);
    assert.is(info['media'][0]['port'], ports[0].port);
    assert.is(info['media'][0]['rtpmap'], 'opus/48000/2');
    assert.equal((await err({ request: 'info', id: 1 }))[0], 455);

    assert.equal((await err({ request: 'edit', id: 77, new_description: 'x' }))[0], 453, 'secret missing');
    assert.equal((await err({ request: 'edit', id: 77, secret: 'no', new_description: 'x' }))[0], 457);
    assert.equal(await c.sync({ request: 'edit', id: 77, secret: 'sec', new_description: 'camera', new_pin: '', new_secret: 'sec2' }), { streaming: 'edited', id: 77, permanent: false });
    const edited = (await c.sync({ request: 'info', id: 77, secret: 'sec2' }))['info'];
    assert.equal([edited['description'], edited['pin']], ['camera', undefined]);
    assert.equal((await err({ request: 'disable', id: 77, secret: 'sec' }))[0], 457);
    assert.equal(await c.sync({ request: 'disable', id: 77, secret: 'sec2' }), { streaming: 'ok' });
    assert.is((await c.sync({ request: 'list' }))['list'][0]['enabled'], false);
    assert.equal(await c.sync({ request: 'enable', id: 77, secret: 'sec2' }), { streaming: 'ok' });
    assert.equal((await err({ request: 'recording', id: 77, action: 'start', secret: 'sec2' }))[0], 459);

    // A viewer's requests: 455 without a mountpoint, PIN checks, one mountpoint per handle.
    const v = await JanusClient.open(st.f);
    assert.is((await v.send({ request: 'start' })).data['error_code'], 455);
    assert.is((await v.send({ request: 'watch', id: 12345 })).data['error_code'], 455);
    await c.sync({ request: 'edit', id: 77, secret: 'sec2', new_pin: 'p' });
    assert.is((await v.send({ request: 'watch', id: 77 })).data['error_code'], 453);
    assert.is((await v.send({ request: 'watch', id: 77, pin: 'q' })).data['error_code'], 457);
    assert.equal((await v.send({ request: 'watch', id: 77, pin: 'p', media: ['zz'] })).data['error_code'], 452, 'no stream with that mid');
    const offer = await v.call({ request: 'watch', id: 77, pin: 'p', media: ['v'] });
    assert.equal(offer.data, { streaming: 'event', result: { status: 'preparing' } });
    assert.equal((offer.jsep!['sdp'] as string).match(/^m=/gm), ['m='], 'only the mid asked for');
    assert.is((await v.send({ request: 'watch', id: 78 })).data['error_code'], 460, 'already watching');
    assert.is((await v.send({ request: 'watch', id: 77, pin: 'p' })).data['error_code'], 460, 'not up yet: no renegotiation');
    assert.is(st.plugin.stats().viewers, 1);
    assert.equal((await v.call({ request: 'stop' })).data, { streaming: 'event', result: { status: 'stopping' } });
    assert.is(st.plugin.stats().viewers, 0);

    assert.equal(await c.sync({ request: 'destroy', id: 78 }), { streaming: 'destroyed', id: 78 });
    assert.equal(await c.sync({ request: 'destroy', id: 77, secret: 'sec2' }), { streaming: 'destroyed', id: 77 });
    assert.is(st.f.ferry.ports.leased, 0);
    // The Admin API reaches the same synchronous requests.
    const admin = await st.f.admin.post('', {
      janus: 'message_plugin', plugin: 'janus.plugin.streaming', admin_secret: st.f.config.auth.admin_secret, request: { request: 'create', type: 'rtp', id: 5, media: [VIDEO] },
    });
    assert.is(admin['response'].streaming, 'created', JSON.stringify(admin));
    await v.close();
    await c.close();
  } finally {
    await st.stop();
  }
});

test('admin_key guards create and shows private mountpoints; permanent mountpoints survive a restart with their ports', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-streaming-'));
  const file = join(dir, 'mountpoints.json');
  // The same media range for both runs, as a restarted ferry has.
  const media = mediaRange();
  try {
    const st = await startStreamingFerry({ media, streaming: { admin_key: 'k', mountpoints_file: file } });
    let port = 0;
    try {
      const c = await JanusClient.open(st.f);
      assert.is((await c.sync({ request: 'create', type: 'rtp', media: [VIDEO] }))['error_code'], 453);
      assert.is((await c.sync({ request: 'create', type: 'rtp', media: [VIDEO], admin_key: 'x' }))['error_code'], 457);
      const created = await c.sync({ request: 'create', type: 'rtp', id: 9, is_private: true, secret: 's', permanent: true, media: [VIDEO], admin_key: 'k' });
      assert.is(created['permanent'], true);
      port = created['stream'].ports[0].port;
      assert.is(statSync(file).mode & 0o777, 0o600, 'owner-only: secrets inside');
      const stored = JSON.parse(readFileSync(file, 'utf8'));
      assert.equal(stored.mountpoints[0].media[0].ports, [port], 'the port it holds is kept');
      assert.is((await c.sync({ request: 'list' }))['list'].length, 0);
      assert.is((await c.sync({ request: 'list', admin_key: 'k' }))['list'].length, 1);
      assert.equal(await c.sync({ request: 'edit', id: 9, secret: 's', new_description: 'kept', permanent: true }), { streaming: 'edited', id: 9, permanent: true });
      await c.close();
    } finally {
      await st.stop();
    }
    const again = await startStreamingFerry({ media, streaming: { admin_key: 'k', mountpoints_file: file } });
    try {
      const c = await JanusClient.open(again.f);
      const info = (await c.sync({ request: 'info', id: 9, secret: 's' }))['info'];
      assert.equal([info['description'], info['media'][0]['port']], ['kept', port], 'restored with its port');
      assert.equal(await c.sync({ request: 'destroy', id: 9, secret: 's', permanent: true }), { streaming: 'destroyed', id: 9 });
      assert.equal(JSON.parse(readFileSync(file, 'utf8')).mountpoints, []);
      assert.is(again.f.ferry.ports.leased, 0);
      await c.close();
    } finally {
      await again.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ingest ports count against the creating client\'s peer_connections_per_client, before any port is leased', async () => {
  const st = await startStreamingFerry({ quotas: { peer_connections_per_client: 1 } });
  try {
    const c = await JanusClient.open(st.f);
    const refused = await c.sync({ request: 'create', type: 'rtp', media: [AUDIO, VIDEO] });
    assert.is(refused['error_code'], 457);
    assert.match(refused['error'], /peer_connections_per_client = 1/);
    assert.is(st.f.ferry.ports.leased, 0, 'the first port was given back');
    const ok = await c.sync({ request: 'create', type: 'rtp', media: [VIDEO] });
    assert.is(ok['streaming'], 'created');
    await c.sync({ request: 'destroy', id: ok['stream'].id });
    assert.is(st.f.ferry.gateway.quotas.status().peer_connections, 0, 'the quota came back with the port');
    await c.close();
  } finally {
    await st.stop();
  }
});

test.run();
