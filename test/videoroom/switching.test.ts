/** `switch`: outputs re-pointed with switchOutput (no renegotiation), the right ids every time, nothing leaked. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { VrClient, publisher, startBench, subscriber, subscriberAnswer, type Bench } from './client.js';

const test = suite<{ b: Bench; c: VrClient }>('videoroom switching');

test.before.each(async (ctx) => {
  ctx.b = await startBench();
  ctx.c = await VrClient.open(ctx.b);
  await ctx.c.sync({ request: 'create', room: 300, publishers: 10, videocodec: 'vp8,vp9' });
});
test.after.each(async ({ b }) => { await b.stop(); });

test('a subscriber switches between two publishers 100 times', async ({ b }) => {
  const alice = await publisher(b, 300, { display: 'alice' });
  const bob = await publisher(b, 300, { display: 'bob' });
  const s = await subscriber(b, 300, [{ feed: alice.id }]);
  const outputs = s.peer.streams().map((x) => x.output!);
  const src = (p: typeof alice) => p.peer.streams().map((x) => x.sources[0]!.source);
  const offersBefore = s.peer.offersMade.length;
  const outputsBefore = b.media.engine.outputs.size;
  const router = b.media.services.router;
  for (let i = 0; i < 100; i++) {
    const to = i % 2 === 0 ? bob : alice;
    router.calls.length = 0;
    const r = await s.c.call({ request: 'switch', streams: [{ feed: to.id, mid: '0', sub_mid: '0' }, { feed: to.id, mid: '1', sub_mid: '1' }] });
    assert.is(r.data['switched'], 'ok');
    assert.is(r.data['changes'], 2);
    assert.is(r.jsep, undefined, 'no renegotiation');
    const name = to === bob ? 'bob' : 'alice';
    assert.equal(r.data['streams'].map((x: any) => [x.mid, x.feed_id, x.feed_display]), [['0', to.id, name], ['1', to.id, name]]);
    const [audio, video] = src(to);
    assert.equal(router.calls, [
      { op: 'switch', output: outputs[0]!, source: audio! },
      { op: 'switch', output: outputs[1]!, source: video! },
      { op: 'keyframe', source: video! },
    ]);
    assert.is(b.media.engine.outputs.get(outputs[0]!)?.source, audio);
    assert.is(b.media.engine.outputs.get(outputs[1]!)?.source, video);
  }
  assert.is(s.peer.offersMade.length, offersBefore);
  assert.is(b.media.engine.outputs.size, outputsBefore, 'no output created or leaked by switching');
  // a switch to the same feed changes nothing and calls nothing
  router.calls.length = 0;
  const same = await s.c.call({ request: 'switch', streams: [{ feed: alice.id, mid: '1', sub_mid: '1' }] });
  assert.is(same.data['changes'], 0);
  assert.equal(router.calls, []);
  await s.c.call({ request: 'leave' });
  for (const o of outputs) assert.is(b.media.engine.outputs.get(o), undefined, 'subscriber outputs gone with its PeerConnection');
});

test('switch validation: 428 unknown feed/mid/sub_mid, 438 other kind or codec; nothing applied on error', async ({ b }) => {
  const alice = await publisher(b, 300);
  const vp9 = await publisher(b, 300, { video: ['vp9'] });
  const s = await subscriber(b, 300, [{ feed: alice.id }]);
  const before = b.media.services.router.calls.length;
  const e = async (streams: unknown[]) => (await s.c.call({ request: 'switch', streams })).data['error_code'];
  assert.is(await e([{ feed: 999, mid: '0', sub_mid: '0' }]), 428);
  assert.is(await e([{ feed: alice.id, mid: '9', sub_mid: '0' }]), 428);
  assert.is(await e([{ feed: alice.id, mid: '0', sub_mid: '9' }]), 428);
  assert.is(await e([{ feed: alice.id, mid: '1', sub_mid: '0' }]), 438);
  assert.is(await e([{ feed: alice.id, mid: '0', sub_mid: '0' }, { feed: vp9.id, mid: '1', sub_mid: '1' }]), 438);
  assert.is(await e([{ feed: alice.id, sub_mid: '0' }]), 429);
  assert.is(b.media.services.router.calls.length, before);
});

test('switching between two remote publishers: distinct sources (own SSRC offsets), outputs follow', async ({ b, c }) => {
  const AV = [{ type: 'audio', mindex: 0, mid: '0', codec: 'opus' }, { type: 'video', mindex: 1, mid: '1', codec: 'vp8' }];
  await c.sync({ request: 'add_remote_publisher', room: 300, id: 1, streams: AV });
  await c.sync({ request: 'add_remote_publisher', room: 300, id: 2, streams: AV });
  const [legX, legY] = b.media.services.openLegs;
  const x = [...legX!.sourceIds];
  const y = [...legY!.sourceIds];
  const wire = (id: number) => b.media.engine.sources.get(id)!;
  assert.is(wire(x[1]!).ssrc, wire(y[1]!).ssrc, 'same wire SSRC scheme');
  assert.is.not(wire(x[1]!).ssrcOffset, wire(y[1]!).ssrcOffset, 'different offsets inside ferry');
  const s = await subscriber(b, 300, [{ feed: 1 }]);
  const outputs = s.peer.streams().map((st) => st.output!);
  for (let i = 0; i < 100; i++) {
    const [id, ids] = i % 2 === 0 ? [2, y] : [1, x];
    await s.c.call({ request: 'switch', streams: [{ feed: id, mid: '0', sub_mid: '0' }, { feed: id, mid: '1', sub_mid: '1' }] });
    assert.is(b.media.engine.outputs.get(outputs[0]!)?.source, ids[0]);
    assert.is(b.media.engine.outputs.get(outputs[1]!)?.source, ids[1]);
  }
});

test('switching onto an inactive m-line renegotiates', async ({ b }) => {
  const alice = await publisher(b, 300);
  const bob = await publisher(b, 300);
  const s = await subscriber(b, 300, [{ feed: alice.id }]);
  await alice.c.call({ request: 'unpublish' });
  await s.c.event((d) => d['videoroom'] === 'updated');
  await s.c.call({ request: 'start' }, subscriberAnswer());
  const r = await s.c.call({ request: 'switch', streams: [{ feed: bob.id, mid: '1', sub_mid: '1' }] });
  assert.is(r.data['changes'], 1);
  const upd = await s.c.event((d) => d['videoroom'] === 'updated');
  assert.is(upd.jsep?.['type'], 'offer');
  assert.is(b.media.engine.outputs.get(s.peer.streams()[1]!.output!)?.source, bob.peer.streams()[1]!.sources[0]!.source);
});

test.run();
