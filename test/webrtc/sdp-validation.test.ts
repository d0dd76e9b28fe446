// SDP validation (sans-IO): every refusal a browser would make is an SdpError whose
// message quotes the offending line, and codecs are exactly what the m-line lists.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { DEFAULT_MAX_MLINES, parseRemoteDescription, SdpError } from '../../src/webrtc/Sdp.js';

const FINGERPRINT = Array.from({ length: 32 }, (_, i) => ((i * 29 + 3) & 0xff).toString(16).padStart(2, '0').toUpperCase()).join(':');

/** What every m-line here carries for ICE, DTLS and direction. */
const TRANSPORT = [
  'a=ice-ufrag:Ab+/',
  'a=ice-pwd:0123456789abcdefABCDEF+/',
  `a=fingerprint:sha-256 ${FINGERPRINT}`,
  'a=setup:actpass',
  'a=rtcp-mux',
  'a=sendrecv',
];

function audio(mid: string, extra: string[] = [], formats = '111 0'): string[] {
  return [
    `m=audio 9 UDP/TLS/RTP/SAVPF ${formats}`,
    'c=IN IP4 0.0.0.0',
    `a=mid:${mid}`,
    ...TRANSPORT,
    'a=rtpmap:111 opus/48000/2',
    'a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid',
    ...extra,
  ];
}

function sdp(sections: string[][]): string {
  return ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 't=0 0', ...sections.flat(), ''].join('\r\n');
}

const VIDEO = [
  'm=video 9 UDP/TLS/RTP/SAVPF 96 97',
  'c=IN IP4 0.0.0.0',
  'a=mid:1',
  ...TRANSPORT,
  'a=rtpmap:96 VP8/90000',
  'a=rtpmap:97 rtx/90000',
  'a=fmtp:97 apt=96',
];

const GOOD = sdp([audio('0'), VIDEO]);

/** Asserts that `text` is refused with a reason quoting `line` verbatim. */
function refused(text: string, line: string, type: 'offer' | 'answer' = 'offer', maxMLines?: number): void {
  let error: unknown;
  try {
    parseRemoteDescription(type, text, maxMLines !== undefined ? { maxMLines } : {});
  } catch (err) {
    error = err;
  }
  assert.ok(error instanceof SdpError, `refused: ${line}`);
  assert.ok((error as Error).message.includes(line), `"${(error as Error).message}" names "${line}"`);
}

/** GOOD with one line replaced. */
function withLine(from: string, to: string): string {
  assert.ok(GOOD.includes(`${from}\r\n`), from);
  return GOOD.split(`${from}\r\n`).join(`${to}\r\n`);
}

test('a correct offer parses; its codecs are the listed payload types (static 0 as PCMU)', () => {
  const d = parseRemoteDescription('offer', GOOD);
  assert.equal(d.media[0]!.codecs.map((c) => [c.payloadType, c.name, c.clockRate]), [[111, 'opus', 48000], [0, 'PCMU', 8000]]);
  assert.equal(d.media[1]!.codecs.map((c) => c.name), ['VP8', 'rtx']);
});

test('transport: RTP/AVP, RTP/SAVPF and UDP/TLS/RTP/SAVP are refused, naming the m-line', () => {
  for (const proto of ['RTP/AVP', 'RTP/SAVPF', 'UDP/TLS/RTP/SAVP', 'TCP/TLS/RTP/SAVPF']) {
    refused(withLine('m=audio 9 UDP/TLS/RTP/SAVPF 111 0', `m=audio 9 ${proto} 111 0`), `m=audio 9 ${proto} 111 0`);
  }
  refused(sdp([audio('0'), ['m=application 9 RTP/AVP webrtc-datachannel', 'a=mid:1']]), 'm=application 9 RTP/AVP webrtc-datachannel');
  // A data channel m-line with a real SCTP profile is fine (ferry rejects it in its answer).
  parseRemoteDescription('offer', sdp([audio('0'), ['m=application 9 UDP/DTLS/SCTP webrtc-datachannel', 'a=mid:1', 'a=sctp-port:5000']]));
});

test('fingerprint: unknown hash or wrong length is refused, naming the line', () => {
  refused(withLine(`a=fingerprint:sha-256 ${FINGERPRINT}`, 'a=fingerprint:md5 00:11'), 'a=fingerprint:md5 00:11');
  refused(withLine(`a=fingerprint:sha-256 ${FINGERPRINT}`, 'a=fingerprint:sha-1 00:11:22:33:44:55:66:77:88:99:00:11:22:33:44:55:66:77:88:99'), 'a=fingerprint:sha-1');
  refused(withLine(`a=fingerprint:sha-256 ${FINGERPRINT}`, 'a=fingerprint:sha-256 00:11'), 'a=fingerprint:sha-256 00:11');
  refused(withLine(`a=fingerprint:sha-256 ${FINGERPRINT}`, `a=fingerprint:sha-384 ${FINGERPRINT}`), `a=fingerprint:sha-384 ${FINGERPRINT}`);
  const sha512 = Array.from({ length: 64 }, () => 'AB').join(':');
  assert.is(parseRemoteDescription('offer', GOOD.split(`sha-256 ${FINGERPRINT}`).join(`sha-512 ${sha512}`)).fingerprint.algorithm, 'sha-512');
});

test('ICE credentials: ufrag 4–256 and pwd 22–256 ice-chars (RFC 8839 §5.4), naming the line', () => {
  refused(withLine('a=ice-pwd:0123456789abcdefABCDEF+/', 'a=ice-pwd:x'), 'a=ice-pwd:x');
  refused(withLine('a=ice-pwd:0123456789abcdefABCDEF+/', 'a=ice-pwd:0123456789abcdefABCDE'), 'a=ice-pwd:0123456789abcdefABCDE');
  refused(withLine('a=ice-pwd:0123456789abcdefABCDEF+/', `a=ice-pwd:${'p'.repeat(257)}`), 'a=ice-pwd:ppp');
  refused(withLine('a=ice-ufrag:Ab+/', 'a=ice-ufrag:abc'), 'a=ice-ufrag:abc');
  refused(withLine('a=ice-ufrag:Ab+/', 'a=ice-ufrag:ab:cd'), 'a=ice-ufrag:ab:cd');
  // The shortest legal ones pass.
  parseRemoteDescription('offer', withLine('a=ice-pwd:0123456789abcdefABCDEF+/', 'a=ice-pwd:0123456789abcdefABCDEF'));
});

test('setup: passive or holdconn in an offer and actpass in an answer are refused (RFC 8842 §5.3)', () => {
  refused(withLine('a=setup:actpass', 'a=setup:passive'), 'a=setup:passive');
  refused(withLine('a=setup:actpass', 'a=setup:holdconn'), 'a=setup:holdconn');
  assert.is(parseRemoteDescription('offer', withLine('a=setup:actpass', 'a=setup:active')).setup, 'active');
  refused(GOOD, 'a=setup:actpass', 'answer');
  assert.is(parseRemoteDescription('answer', GOOD.split('a=setup:actpass').join('a=setup:passive')).setup, 'passive');
});

test('payload types: outside 0–127, in the RTCP range, or a static type rebound are refused', () => {
  refused(withLine('m=audio 9 UDP/TLS/RTP/SAVPF 111 0', 'm=audio 9 UDP/TLS/RTP/SAVPF 99999'), 'm=audio 9 UDP/TLS/RTP/SAVPF 99999');
  refused(withLine('m=audio 9 UDP/TLS/RTP/SAVPF 111 0', 'm=audio 9 UDP/TLS/RTP/SAVPF 111 x'), 'm=audio 9 UDP/TLS/RTP/SAVPF 111 x');
  refused(withLine('m=audio 9 UDP/TLS/RTP/SAVPF 111 0', 'm=audio 9 UDP/TLS/RTP/SAVPF 111 72'), 'm=audio 9 UDP/TLS/RTP/SAVPF 111 72');
  refused(sdp([audio('0', ['a=rtpmap:0 opus/48000/2'])]), 'a=rtpmap:0 opus/48000/2');
  refused(sdp([audio('0', ['a=rtpmap:8 PCMA/16000'], '111 8')]), 'a=rtpmap:8 PCMA/16000');
  refused(sdp([audio('0', ['a=rtpmap:112 telephone-event'], '111 112')]), 'a=rtpmap:112 telephone-event');
  // The static types' own rtpmaps are fine.
  parseRemoteDescription('offer', sdp([audio('0', ['a=rtpmap:0 PCMU/8000', 'a=rtpmap:9 G722/8000'], '111 0 9')]));
});

test('codecs are only the listed payload types: no rtpmap → only static 0/8/9 as themselves', () => {
  // The probe: m=audio … 5 8 and m=video … 8 with rtpmaps only for types the m-lines do not list.
  const d = parseRemoteDescription('offer', sdp([
    audio('0', [], '5 8'),
    [...VIDEO.map((l) => (l.startsWith('m=video') ? 'm=video 9 UDP/TLS/RTP/SAVPF 8 100' : l))],
  ]));
  assert.equal(d.media[0]!.codecs.map((c) => [c.payloadType, c.name, c.clockRate]), [[8, 'PCMA', 8000]]);
  // Video lists 8 (PCMA, never a video codec) and 100 without rtpmap (nothing): VP8 on 96 is not listed.
  assert.equal(d.media[1]!.codecs.map((c) => [c.payloadType, c.name]), [[8, 'PCMA']]);
  assert.equal(d.media[1]!.formats, ['8', '100']);
});

test('one payload type with two codecs across bundled m-lines of a kind is refused (RFC 8843 §9.1)', () => {
  refused(sdp([audio('0'), audio('1', ['a=rtpmap:112 PCMU/8000'], '111 112').map((l) => (l === 'a=rtpmap:111 opus/48000/2' ? 'a=rtpmap:111 G722/8000' : l))]), 'a=rtpmap:111 G722/8000');
  // The same codec on the same payload type in two m-lines is fine.
  parseRemoteDescription('offer', sdp([audio('0'), audio('1')]));
});

test('RTP header extension ids 1–255, one URI each; mids unique', () => {
  refused(sdp([audio('0', ['a=extmap:300 urn:ietf:params:rtp-hdrext:ssrc-audio-level'])]), 'a=extmap:300 urn:ietf:params:rtp-hdrext:ssrc-audio-level');
  refused(sdp([audio('0', ['a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level'])]), 'a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level');
  refused(sdp([audio('0'), audio('0')]), 'a=mid:0');
});

test(`more than ${DEFAULT_MAX_MLINES} m-lines in an offer are refused, naming the first one too many; the cap is configurable`, () => {
  const many = (n: number) => sdp(Array.from({ length: n }, (_, i) => audio(String(i))));
  parseRemoteDescription('offer', many(DEFAULT_MAX_MLINES));
  refused(many(200), `m=audio 9 UDP/TLS/RTP/SAVPF 111 0: m-line ${DEFAULT_MAX_MLINES + 1} of 200`);
  refused(many(5), 'm-line 5 of 5', 'offer', 4);
  assert.is(parseRemoteDescription('offer', many(200), { maxMLines: 200 }).media.length, 200);
});

test('every refusal is an SdpError, never another exception, on mangled lines', () => {
  const lines = GOOD.split('\r\n');
  for (let i = 4; i < lines.length - 1; i++) {
    for (const mangle of [(l: string) => l.replace(/:.*/, ':'), (l: string) => `${l} \u0000junk`, (l: string) => l.replace(/\d+/g, '99999')]) {
      const text = [...lines.slice(0, i), mangle(lines[i]!), ...lines.slice(i + 1)].join('\r\n');
      try {
        parseRemoteDescription('offer', text);
      } catch (err) {
        assert.ok(err instanceof SdpError, `${lines[i]} mangled: ${String(err)}`);
      }
    }
  }
});

test.run();
