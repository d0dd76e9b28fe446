// SDP parsing and writing (sans-IO): what a WebRTC peer's offer must carry,
// and what ferry's ICE-lite answer always says.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { answerDirection, parseRemoteDescription, SdpError, writeLocalDescription } from '../../src/webrtc/Sdp.js';

const FINGERPRINT = 'AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89';

const OFFER = [
  'v=0',
  'o=- 1 1 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0 1',
  `a=fingerprint:sha-256 ${FINGERPRINT}`,
  'm=audio 9 UDP/TLS/RTP/SAVPF 111 0',
  'c=IN IP4 0.0.0.0',
  'a=mid:0',
  'a=ice-ufrag:2137',
  'a=ice-pwd:12345678901234567890123456789012',
  'a=setup:actpass',
  'a=rtcp-mux',
  'a=sendrecv',
  'a=rtpmap:111 opus/48000/2',
  'a=rtpmap:0 PCMU/8000',
  'a=ssrc:1111 cname:x',
  'm=video 9 UDP/TLS/RTP/SAVPF 96 97',
  'c=IN IP4 0.0.0.0',
  'a=mid:1',
  'a=ice-ufrag:2137',
  'a=ice-pwd:12345678901234567890123456789012',
  'a=setup:actpass',
  'a=rtcp-mux',
  'a=sendonly',
  'a=rtpmap:96 VP8/90000',
  'a=rtpmap:97 rtx/90000',
  'a=fmtp:97 apt=96',
  'a=rtcp-fb:96 nack pli',
  'a=ssrc-group:FID 2222 3333',
  'a=ssrc:2222 cname:x',
  'a=ssrc:3333 cname:x',
  '',
].join('\r\n');

test('parses credentials as strings even when all digits, SSRCs without RTX partners', () => {
  const d = parseRemoteDescription('offer', OFFER);
  assert.is(d.iceUfrag, '2137');
  assert.is(typeof d.icePwd, 'string');
  assert.is(d.fingerprint.algorithm, 'sha-256');
  assert.is(d.setup, 'actpass');
  assert.equal(d.bundle, ['0', '1']);
  assert.equal(d.media[0]!.ssrcs, [1111]);
  assert.equal(d.media[1]!.ssrcs, [2222]);
  assert.is(d.media[1]!.rtxSsrcs.get(2222), 3333);
  assert.is(d.media[1]!.direction, 'sendonly');
});

test('missing or malformed mandatory attributes are SdpErrors naming them', () => {
  for (const [strip, msg] of [
    [/^a=fingerprint:.*\r\n/gm, /fingerprint/],
    [/^a=ice-ufrag:.*\r\n/gm, /ICE/],
    [/^a=ice-pwd:.*\r\n/gm, /ICE/],
    [/^m=.*\r\n/gm, /m-line/],
  ] as const) {
    assert.throws(() => parseRemoteDescription('offer', OFFER.replace(strip, '')), (e: unknown) => e instanceof SdpError && msg.test((e as Error).message));
  }
  assert.throws(() => parseRemoteDescription('offer', ''), (e: unknown) => e instanceof SdpError);
  assert.throws(() => parseRemoteDescription('offer', 'hello'), (e: unknown) => e instanceof SdpError);
  assert.throws(() => parseRemoteDescription('offer', OFFER.replace(/sha-256 AB/, 'sha-256 ZZ')), /malformed/);
});

test('answer directions follow RFC 3264 §6.1', () => {
  assert.is(answerDirection('sendrecv', true, true), 'sendrecv');
  assert.is(answerDirection('sendonly', true, true), 'recvonly');
  assert.is(answerDirection('recvonly', true, true), 'sendonly');
  assert.is(answerDirection('inactive', true, true), 'inactive');
  assert.is(answerDirection('sendrecv', false, true), 'recvonly');
});

test('local descriptions are ICE-lite, bundled, rtcp-mux, with host candidates and fingerprint', () => {
  const sdp = writeLocalDescription(
    {
      iceUfrag: 'ufra',
      icePwd: 'passwordpasswordpassword',
      fingerprint: { algorithm: 'sha-256', value: FINGERPRINT },
      setup: 'passive',
      candidates: [{ ip: '127.0.0.1', port: 40000 }],
    },
    [
      { mid: '0', kind: 'audio', codec: { payloadType: 111, name: 'opus', clockRate: 48000, channels: 2, rtcpFb: [] }, direction: 'sendrecv', ssrc: 42 },
      { mid: '1', kind: 'video', codec: null, direction: 'inactive' },
    ],
  );
  const d = parseRemoteDescription('answer', sdp);
  assert.ok(d.iceLite);
  assert.equal(d.bundle, ['0']);
  assert.is(d.setup, 'passive');
  assert.equal(d.candidates, [{ ip: '127.0.0.1', port: 40000, protocol: 'udp' }]);
  assert.equal(d.media[0]!.ssrcs, [42]);
  assert.ok(d.media[1]!.rejected);
  assert.match(sdp, /a=rtcp-mux/);
  assert.match(sdp, /a=end-of-candidates/);
});

test.run();
