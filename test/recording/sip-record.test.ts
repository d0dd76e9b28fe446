// SIP plugin recording with a real phone: a werift browser calls baresip (Debian's baresip,
// answering by itself and playing its 440 Hz sine as PCMU), the handle asks Janus's
// `recording` for both legs (the browser's audio and the peer's), and janus-pp-rec turns each
// `.mjr` into a .wav that ffprobe decodes. The call's hangup closes the files.
import { existsSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MediaStreamTrack } from 'werift';

import { closePeer, connectionState } from '../helpers/werift.js';
import { requireBinary } from '../sip/helpers.js';
import { Baresip } from '../sip-plugin/baresip.js';
import { SipClient, expectCallsReleased, registerGuest, startSipFerry, until } from '../sip-plugin/helpers.js';
import { BrowserMicrophone, browserWithEvents } from '../sip-plugin/media.js';
import { engineCounters, janusPpRec, mjrHeader, probe, recordingsDir } from './harness.js';

const test = suite('SIP plugin recording both legs of a call with baresip');
const result = (e: Record<string, any>) => e['plugindata']['data']['result'] as Record<string, any>;

test.before(() => {
  requireBinary('baresip');
});

test('recording: the browser\'s and baresip\'s audio each go to a .mjr that janus-pp-rec converts', async () => {
  const dir = recordingsDir();
  const s = await startSipFerry({}, { recordings: { dir } });
  const phone = await Baresip.start({ accountParams: 'answermode=auto' });
  const pc = browserWithEvents(101);
  let client: SipClient | undefined;
  try {
    client = await SipClient.open(s.f);
    await registerGuest(client);
    const audio = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
    let heard = 0;
    audio.onTrack.subscribe((track) => track.onReceiveRtp.subscribe(() => heard++));
    await pc.setLocalDescription(await pc.createOffer());
    await client.send({ request: 'call', uri: phone.uri }, { type: 'offer', sdp: pc.localDescription!.sdp });
    const accepted = await client.event('accepted', 15_000);
    await pc.setRemoteDescription(accepted['jsep']);
    await connectionState(pc, 'connected');
    await client.core('webrtcup');
    await until(() => heard > 10, 10_000, 'baresip\'s RTP at the browser');
    // At least one side must be named (Janus's 451 otherwise).
    await client.send({ request: 'recording', action: 'start' });
    assert.is((await client.event('error'))['plugindata']['data']['error_code'], 451);
    const mic = new BrowserMicrophone(audio, 101);
    mic.start();
    try {
      const base = `${dir}/call`;
      await client.send({ request: 'recording', action: 'start', audio: true, peer_audio: true, filename: base });
      const updated = result(await client.event('recordingupdated'));
      const open = (updated['recordings'] as { side: string; path: string }[]).map((r) => [r.side, r.path]).sort();
      assert.equal(open, [['peer-audio', `${base}-peer-audio.mjr`], ['user-audio', `${base}-user-audio.mjr`]]);
      const info = await client.info();
      assert.is((info['recordings'] as unknown[]).length, 2, 'Admin handle_info lists them');
      await until(() => phone.rxBitrate() > 0, 15_000, 'baresip receiving the browser\'s RTP');
      const before = heard;
      await until(() => heard >= before + 75, 10_000, 'another 1.5 s of baresip\'s audio');
    } finally {
      mic.stop();
    }
    await client.send({ request: 'hangup' });
    assert.is(result(await client.event('hangup'))['code'], 200);
    await phone.event('CALL_CLOSED');
    await expectCallsReleased(s, { noPeerConnection: true });
    assert.is((await engineCounters(s.f))['recordingsOpen'], 0, 'the hangup closed both files');

    for (const side of ['user', 'peer']) {
      const mjr = `${dir}/call-${side}-audio.mjr`;
      assert.ok(existsSync(mjr), mjr);
      const header = await mjrHeader(mjr);
      assert.equal([header['t'], header['c']], ['a', 'pcmu'], `${side} leg header`);
      const log = await janusPpRec(mjr, mjr.replace(/\.mjr$/, '.wav'));
      const packets = Number(/Counted (\d+) RTP packets/.exec(log)?.[1] ?? 0);
      assert.ok(packets >= 50, `${side} leg: ${packets} packets recorded`);
      const wav = await probe(mjr.replace(/\.mjr$/, '.wav'));
      assert.ok(wav.codec.startsWith('pcm_'), `${side} leg decodes (${wav.codec})`);
      assert.ok(wav.duration >= 1, `${side} leg: ${wav.duration} s of audio`);
    }
  } finally {
    await client?.close().catch(() => undefined);
    await s.f.stop();
    await phone.stop();
    await closePeer(pc);
  }
});

test.run();
