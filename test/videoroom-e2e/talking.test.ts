// Talking detection end to end: a werift publisher negotiates RFC 6464
// ssrc-audio-level, sends levels in its audio packets, and the native engine's
// window averages become Janus `talking` / `stopped-talking` events.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RtpHeader, RtpPacket, useAudioLevelIndication, useOPUS, useTransportWideCC, useVP8, type RTCRtpSender } from 'werift';

import { VrClient, pause, publish, withRoom } from './harness.js';
import type { Json } from '../helpers/http.js';

/** The next plugin event of this client whose data is a `kind` VideoRoom event. */
async function roomEvent(c: VrClient, kind: string): Promise<Json> {
  const e = await c.ws.nextEvent((ev) => ev['sender'] === c.handleId && ev['plugindata']?.data?.videoroom === kind, 5000);
  return e['plugindata'].data as Json;
}

const AUDIO_LEVEL_URI = 'urn:ietf:params:rtp-hdrext:ssrc-audio-level';
const WINDOW = 20;

/** One audio packet carrying an RFC 6464 level (V bit set while loud), as a browser sends it. */
async function sendLevel(sender: RTCRtpSender, extensionId: number, seq: number, level: number): Promise<void> {
  const header = new RtpHeader({ payloadType: sender.codec!.payloadType, sequenceNumber: seq & 0xffff, timestamp: (seq * 960) >>> 0 });
  header.extension = true;
  header.extensions = [{ id: extensionId, payload: Buffer.from([(level < 50 ? 0x80 : 0) | level]) }];
  await sender.sendRtp(new RtpPacket(header, Buffer.alloc(60, seq & 0xff)));
}

test('a werift publisher speaking and falling silent: talking, then stopped-talking, with the window averages', () =>
  withRoom({ room: 77, audiolevel_event: true, audio_active_packets: WINDOW, audio_level_average: 30 }, async ({ vr, admin, peers }) => {
    const watcher = await VrClient.open(vr.f);
    await watcher.call({ request: 'join', ptype: 'publisher', room: 77, display: 'watcher' });
    const pub = await publish(vr.f, 77, 'speaker', peers, {
      codecs: { audio: [useOPUS()], video: [useVP8()] },
      headerExtensions: { audio: [useAudioLevelIndication()] },
    });
    const extmap = new RegExp(`^a=extmap:(\\d+) ${AUDIO_LEVEL_URI}`, 'm').exec(pub.answer);
    assert.ok(extmap, `ferry's answer accepts ssrc-audio-level:\n${pub.answer}`);
    const id = Number(extmap![1]);
    assert.ok(!new RegExp(`^m=video[^]*a=extmap:\\d+ ${AUDIO_LEVEL_URI}`, 'm').test(pub.answer), 'only on audio');

    let seq = 1000;
    // Loud: levels 8..12 (−dBov), average 10 < 30.
    for (let i = 0; i < WINDOW; i++) await sendLevel(pub.audio, id, seq++, 8 + (i % 5));
    const talking = await roomEvent(watcher, 'talking');
    assert.equal(talking, { videoroom: 'talking', room: 77, id: pub.id, mid: '0', 'audio-level-dBov-avg': 10 });
    const self = await roomEvent(pub.client, 'talking');
    assert.is(self['id'], pub.id, 'the speaker hears it too');
    // Packets without the extension do not count towards a window.
    for (let i = 0; i < WINDOW * 2; i++) {
      const header = new RtpHeader({ payloadType: pub.audio.codec!.payloadType, sequenceNumber: seq++ & 0xffff, timestamp: (seq * 960) >>> 0 });
      await pub.audio.sendRtp(new RtpPacket(header, Buffer.alloc(60)));
    }
    await pause(100);
    assert.not.ok(watcher.ws.events.some((e) => e['plugindata']?.data?.videoroom === 'stopped-talking'), 'no level, no change');
    // Silence: 127, average 127.
    for (let i = 0; i < WINDOW; i++) await sendLevel(pub.audio, id, seq++, 127);
    const stopped = await roomEvent(watcher, 'stopped-talking');
    assert.equal(stopped, { videoroom: 'stopped-talking', room: 77, id: pub.id, mid: '0', 'audio-level-dBov-avg': 127 });
    await pub.client.close();
    await watcher.close();
    await admin.close();
  }));

test('audiolevel_ext / transport_wide_cc_ext: a room decides which extensions a publisher\'s answer accepts', () =>
  withRoom({ room: 78 }, async ({ vr, admin, peers }) => {
    await admin.sync({ request: 'create', room: 79, audiolevel_ext: false, transport_wide_cc_ext: false });
    const offering = {
      codecs: { audio: [useOPUS()], video: [useVP8()] },
      headerExtensions: { audio: [useAudioLevelIndication(), useTransportWideCC()], video: [useTransportWideCC()] },
    };
    const TWCC = 'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01';
    const on = await publish(vr.f, 78, 'default-room', peers, offering);
    assert.match(on.answer, new RegExp(`a=extmap:\\d+ ${AUDIO_LEVEL_URI}`));
    assert.match(on.answer, new RegExp(`a=extmap:\\d+ ${TWCC}`));
    const off = await publish(vr.f, 79, 'plain-room', peers, offering);
    assert.not.match(off.answer, /ssrc-audio-level/);
    assert.not.match(off.answer, /transport-wide-cc|transport-cc/);
    await on.client.close();
    await off.client.close();
    await admin.close();
  }));

test.run();
