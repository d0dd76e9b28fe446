/**
 * Janus's `update` in an established call (signalling only, an in-process SIP
 * peer): the browser's new offer is answered by ferry (`updating` with the JSEP
 * answer, same codec and RFC 4733 events), and the SIP session is refreshed with
 * a re-INVITE (RFC 3264 §8: a new version of ferry's description, its SDES key
 * and telephone-event kept), whose answer gives `updated`.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import type { InDialogRequestEvent } from '../../src/sip/Call.js';
import { UserAgent } from '../../src/sip/UserAgent.js';
import { SipClient, registerGuest, startSipFerry, until, webrtcSdp } from './helpers.js';

const result = (e: Record<string, any>) => e['plugindata']['data']['result'] as Record<string, any>;

/** A browser offer with PCMU and telephone-event 101. */
function offerWithEvents(): string {
  return webrtcSdp('offer', { pt: 0, codec: 'PCMU/8000' })
    .replace(/^(m=audio 9 UDP\/TLS\/RTP\/SAVPF 0)$/m, '$1 101')
    .replace('a=rtpmap:0 PCMU/8000', 'a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16');
}

test('update: ferry answers the browser\'s re-offer and refreshes the SIP session (re-INVITE, new version, same key and events)', async () => {
  const s = await startSipFerry();
  const peer = await UserAgent.create({ host: '127.0.0.1', user: 'peer' });
  let client: SipClient | undefined;
  try {
    client = await SipClient.open(s.f);
    await registerGuest(client);
    let offer = '';
    const reoffers: InDialogRequestEvent[] = [];
    peer.on('incomingCall', (call) => {
      offer = call.remoteSdp ?? '';
      // The peer's own key (30 bytes: AES_CM_128 key and salt).
      const key = `inline:${Buffer.alloc(30, 9).toString('base64')}`;
      const answer = ['v=0', 'o=peer 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', 'm=audio 40000 RTP/SAVP 0 101', 'a=rtpmap:0 PCMU/8000',
        'a=rtpmap:101 telephone-event/8000', `a=crypto:1 AES_CM_128_HMAC_SHA1_80 ${key}`, 'a=sendrecv', ''].join('\r\n');
      call.on('reinvite', (ev) => {
        reoffers.push(ev);
        ev.respond(200, answer);
      });
      peer.answer(call, 200, answer);
    });
    await client.send({ request: 'call', uri: `sip:peer@127.0.0.1:${peer.udp!.local.port}`, srtp: 'sdes_mandatory' }, { type: 'offer', sdp: offerWithEvents() });
    await client.event('accepted');
    assert.match(offer, /^m=audio \d+ RTP\/SAVP 0 101/m);

    await client.send({ request: 'update' }, { type: 'offer', sdp: offerWithEvents() });
    const updating = await client.event('updating');
    assert.is(updating['jsep']?.['type'], 'answer');
    assert.match(updating['jsep']['sdp'], /a=rtpmap:0 PCMU\/8000/);
    assert.match(updating['jsep']['sdp'], /a=rtpmap:101 telephone-event\/8000/);
    const updated = result(await client.event('updated'));
    assert.is(updated['code'], 200);
    assert.is(reoffers.length, 1);
    const refreshed = reoffers[0]!.body ?? '';
    const version = (sdp: string) => Number(/^o=\S+ \S+ (\d+)/m.exec(sdp)?.[1]);
    assert.ok(version(refreshed) > version(offer), 'a new version of ferry\'s description (RFC 3264 §8)');
    const keyOf = (sdp: string) => /a=crypto:1 AES_CM_128_HMAC_SHA1_80 (inline:\S+)/.exec(sdp)?.[1];
    assert.is(keyOf(refreshed), keyOf(offer), 'ferry keeps its SDES key');
    assert.match(refreshed, /^m=audio \d+ RTP\/SAVP 0 101/m, 'and the events');

    await client.send({ request: 'hangup' });
    await client.event('hangup');
    await until(() => s.f.ferry.leasedPorts() === 0, 5000, 'every port released');
  } finally {
    await client?.close().catch(() => undefined);
    await s.f.stop();
    await peer.close();
  }
});

test.run();
