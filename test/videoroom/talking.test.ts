/** Talking detection (Janus audiolevel_event) over the real API, levels through the fake media seam. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { VrClient, publisher, startBench, type Bench } from './client.js';

const test = suite<{ b: Bench }>('videoroom talking');

test.before.each(async (ctx) => {
  ctx.b = await startBench();
});
test.after.each(async ({ b }) => {
  await b.stop();
});

test('talking / stopped-talking reach every participant, the speaker too; listparticipants shows it', async ({ b }) => {
  const admin = await VrClient.open(b);
  await admin.sync({ request: 'create', room: 200, audiolevel_event: true, audio_active_packets: 50, audio_level_average: 40 });
  const watcher = await VrClient.open(b);
  await watcher.call({ request: 'join', ptype: 'publisher', room: 200, display: 'watcher' });
  const speaker = await publisher(b, 200, { display: 'speaker' });
  assert.equal(speaker.peer.audioMetering?.packets, 50, 'the room window reaches the media layer once media is up');
  const listed = await watcher.event((d) => Array.isArray(d['publishers']));
  assert.is(listed.data['publishers'][0].talking, false, 'publishers carry talking when the room reports it');

  speaker.peer.emitAudioLevel('0', 55); // quieter than the threshold: nothing changes
  speaker.peer.emitAudioLevel('0', 12); // louder: talking
  for (const c of [watcher, speaker.c]) {
    const ev = await c.event((d) => d['videoroom'] === 'talking');
    assert.equal(ev.data, { videoroom: 'talking', room: 200, id: speaker.id, mid: '0', 'audio-level-dBov-avg': 12 });
  }
  speaker.peer.emitAudioLevel('0', 20); // still talking: no second event
  const parts = await admin.sync({ request: 'listparticipants', room: 200 });
  assert.is(parts['participants'].find((p: any) => p.id === speaker.id).talking, true);
  speaker.peer.emitAudioLevel('0', 40); // not below the threshold: stopped
  const stopped = await watcher.event((d) => d['videoroom'] === 'stopped-talking');
  assert.equal(stopped.data, { videoroom: 'stopped-talking', room: 200, id: speaker.id, mid: '0', 'audio-level-dBov-avg': 40 });
  assert.not.ok(watcher.pending().some((e) => e['plugindata']?.data?.videoroom === 'talking'), 'one talking event per change');

  // A publisher's own threshold and window (configure) take over from the room's.
  await speaker.c.call({ request: 'configure', audio_level_average: 10, audio_active_packets: 25 });
  assert.equal(speaker.peer.audioMetering?.packets, 25);
  speaker.peer.emitAudioLevel('0', 12);
  speaker.peer.emitAudioLevel('0', 9);
  const own = await watcher.event((d) => d['videoroom'] === 'talking');
  assert.is(own.data['audio-level-dBov-avg'], 9);

  // Unpublishing stops metering.
  await speaker.c.call({ request: 'unpublish' });
  assert.is(speaker.peer.audioMetering, null);
});

test('rooms without audiolevel_event meter nothing and send no talking events', async ({ b }) => {
  const admin = await VrClient.open(b);
  await admin.sync({ request: 'create', room: 201 });
  const speaker = await publisher(b, 201);
  assert.is(speaker.peer.audioMetering, null);
  speaker.peer.emitAudioLevel('0', 0);
  const parts = await admin.sync({ request: 'listparticipants', room: 201 });
  assert.is(parts['participants'][0].talking, undefined);
});

test.run();
