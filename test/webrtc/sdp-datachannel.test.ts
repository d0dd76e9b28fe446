// Data-channel m-lines in SDP (RFC 8841), sans-IO: what ferry reads of a peer's
// m=application, how it answers (or refuses) it, and how it offers one.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as sdpTransform from 'sdp-transform';

import { parseRemoteDescription, SdpError } from '../../src/webrtc/Sdp.js';
import { buildAnswer, buildOffer } from '../../src/webrtc/SdpBuilder.js';

const FINGERPRINT = 'AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89';
const TRANSPORT = {
  iceUfrag: 'ferryufrag',
  icePwd: 'ferrypassword123456789012',
  fingerprint: { algorithm: 'sha-256', value: FINGERPRINT },
  candidates: [{ ip: '127.0.0.1', port: 40000 }],
};

function offer(application: string[], audio = true): string {
  return [
    'v=0',
    'o=- 1 1 IN IP4 127.0.0.1',
    's=-',
    't=0 0',
    `a=group:BUNDLE ${audio ? '0 1' : '0'}`,
    `a=fingerprint:sha-256 ${FINGERPRINT}`,
    'a=ice-ufrag:2137',
    'a=ice-pwd:12345678901234567890123456789012',
    'a=setup:actpass',
    ...(audio ? ['m=audio 9 UDP/TLS/RTP/SAVPF 111', 'c=IN IP4 0.0.0.0', 'a=mid:0', 'a=rtcp-mux', 'a=sendrecv', 'a=rtpmap:111 opus/48000/2'] : []),
    ...application.map((l) => l.replace('a=mid:X', `a=mid:${audio ? 1 : 0}`)),
    '',
  ].join('\r\n');
}

const MODERN = ['m=application 9 UDP/DTLS/SCTP webrtc-datachannel', 'c=IN IP4 0.0.0.0', 'a=mid:X', 'a=sctp-port:5000', 'a=max-message-size:262144'];
const LEGACY = ['m=application 9 DTLS/SCTP 5000', 'c=IN IP4 0.0.0.0', 'a=mid:X', 'a=sctpmap:5000 webrtc-datachannel 1024'];

const context = { previous: new Map(), streamName: 'ferry-test', transport: TRANSPORT, ridExtension: undefined, twccExtension: undefined };

test('the peer\'s SCTP port and max-message-size are read (RFC 8841 §5, §6); absent: 5000 and 64 KiB', () => {
  assert.equal(parseRemoteDescription('offer', offer(MODERN)).media[1]!.sctp, { port: 5000, maxMessageSize: 262144 });
  const bare = parseRemoteDescription('offer', offer(['m=application 9 UDP/DTLS/SCTP webrtc-datachannel', 'c=IN IP4 0.0.0.0', 'a=mid:X']));
  assert.equal(bare.media[1]!.sctp, { port: 5000, maxMessageSize: 65536 });
  assert.equal(parseRemoteDescription('offer', offer(LEGACY)).media[1]!.sctp, { port: 5000, maxMessageSize: 1024 });
  assert.is(parseRemoteDescription('offer', offer(MODERN)).media[0]!.sctp, null, 'audio has none');
  assert.throws(() => parseRemoteDescription('offer', offer(MODERN.map((l) => l.replace('5000', '70000')))), (e: unknown) => e instanceof SdpError && /sctp-port/.test((e as Error).message));
  // Another application over SCTP is not a data channel: no parameters, answered rejected.
  assert.is(parseRemoteDescription('offer', offer(['m=application 9 UDP/DTLS/SCTP bfcp', 'c=IN IP4 0.0.0.0', 'a=mid:X'])).media[1]!.sctp, null);
});

test('answered: the m-line in the offer\'s form, bundled, with ferry\'s port and max-message-size; refused when not wanted', () => {
  const remote = parseRemoteDescription('offer', offer(MODERN));
  const yes = buildAnswer(remote, { audio: true, video: true, data: true }, { ...context, dataChannels: { maxMessageSize: 1_000_000 } });
  const m = sdpTransform.parse(yes.sdp);
  const app = m.media[1]!;
  assert.is(app.type, 'application');
  assert.is(app.port, 40000);
  assert.is(app.protocol, 'UDP/DTLS/SCTP');
  assert.is(String(app.payloads), 'webrtc-datachannel');
  assert.is(app.sctpPort, 5000);
  assert.is(app.maxMessageSize, 1000000);
  assert.is(String(m.groups?.[0]?.mids), '0 1');
  assert.equal(yes.data, { mid: '1', index: 1, localPort: 5000, remote: { port: 5000, maxMessageSize: 262144 }, legacy: false });
  // Not wanted by the plugin, or data channels off: port 0, the offer's transport and format kept.
  for (const refused of [
    buildAnswer(remote, { audio: true, video: true, data: false }, { ...context, dataChannels: { maxMessageSize: 1000 } }),
    buildAnswer(remote, { audio: true, video: true, data: true }, context),
  ]) {
    const r = sdpTransform.parse(refused.sdp).media[1]!;
    assert.is(r.port, 0);
    assert.is(r.protocol, 'UDP/DTLS/SCTP');
    assert.is(refused.data, null);
  }
  // The draft form is answered in the draft form.
  const legacy = buildAnswer(parseRemoteDescription('offer', offer(LEGACY)), { audio: true, video: true, data: true }, { ...context, dataChannels: { maxMessageSize: 4096 } });
  const l = sdpTransform.parse(legacy.sdp).media[1]!;
  assert.is(l.protocol, 'DTLS/SCTP');
  assert.equal(l.sctpmap, { sctpmapNumber: 5000, app: 'webrtc-datachannel', maxMessageSize: 4096 });
  // A data-only offer (TextRoom's kind of peer) is answerable.
  const only = buildAnswer(parseRemoteDescription('offer', offer(MODERN, false)), { audio: true, video: true, data: true }, { ...context, dataChannels: { maxMessageSize: 1000 } });
  assert.is(sdpTransform.parse(only.sdp).media.length, 1);
  assert.throws(() => buildAnswer(parseRemoteDescription('offer', offer(MODERN, false)), { audio: true, video: true, data: false }, context), /no m-line ferry can accept/);
});

test('offered: one m=application among the media sections, at its place', () => {
  const built = buildOffer(
    [
      { mid: '0', kind: 'audio', codec: { name: 'opus', clockRate: 48000, channels: 2 }, direction: 'sendonly' },
      { mid: '1', kind: 'data' },
    ],
    { previous: new Map(), streamName: 'ferry-test', transport: TRANSPORT, dataChannels: { maxMessageSize: 262144 } },
  );
  const m = sdpTransform.parse(built.sdp);
  assert.equal(m.media.map((x) => x.type), ['audio', 'application']);
  assert.is(m.media[1]!.sctpPort, 5000);
  assert.is(m.media[1]!.setup, 'actpass');
  assert.equal(built.data, { mid: '1', index: 1, localPort: 5000, remote: null, legacy: false });
  assert.throws(() => buildOffer([{ kind: 'data' }, { kind: 'data', mid: '9' }], { previous: new Map(), streamName: 'x', transport: TRANSPORT, dataChannels: { maxMessageSize: 1 } }), /at most one/);
});

test.run();
