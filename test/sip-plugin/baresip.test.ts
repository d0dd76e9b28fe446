/**
 * The SIP plugin against baresip (a real SIP phone, Debian package `baresip`,
 * run headless by test/sip-plugin/baresip.ts) with SDES-SRTP mandatory on
 * baresip's side (`mediaenc=srtp-mand`), and a werift browser:
 * - the browser calls baresip (`call` with sdes_mandatory); baresip answers
 *   by itself;
 * - baresip calls ferry; `incomingcall` says sdes_mandatory; the browser
 *   answers.
 * Both ways: the SRTP keys in the two SDPs differ (one per direction), RTP
 * arrives at werift (baresip's 440 Hz sine, PCMU) and at baresip (its receive
 * bitrate), RFC 4733 digits cross in each direction (baresip's `sndcode` raises
 * Janus's `dtmf` and reaches the browser as events; the browser's events make
 * baresip report CALL_DTMF_START), and every port, call and PeerConnection is
 * released at the end.
 * Missing baresip is a failure (.ci/install-test-peers.sh installs it).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MediaStreamTrack, type RTCPeerConnection, type RTCRtpTransceiver } from 'werift';

import type { SipMessage } from '../../src/sip/SipMessage.js';
import type { UserAgent } from '../../src/sip/UserAgent.js';
import type { Json } from '../helpers/http.js';
import { closePeer, connectionState } from '../helpers/werift.js';
import { freePort, requireBinary, useKamailio } from '../sip/helpers.js';
import { Baresip, makeCertificate } from './baresip.js';
import { SipClient, registerGuest, expectCallsReleased, startSipFerry, until, type SipFerry } from './helpers.js';
import { BrowserMicrophone, browserWithEvents } from './media.js';

const test = suite('SIP plugin ↔ baresip: SDES-SRTP calls both ways');
const result = (e: Record<string, any>) => e['plugindata']['data']['result'] as Record<string, any>;

test.before(() => {
  requireBinary('baresip');
});
const kamailio = useKamailio(test, { dirPrefix: 'ferry-sip-kam-tls-', limitMs: 60_000 });

/**
 * test/sip-plugin/kamailio/proxy-norr.cfg with a TLS listener: the tls module with the
 * test's certificate (clients' certificates are not asked for nor checked).
 */
function tlsKamailioConfig(dir: string, cert: { cert: string; key: string }): string {
  const base = readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'kamailio', 'proxy-norr.cfg'), 'utf8');
  const tls = [
    'enable_tls=yes',
    'loadmodule "tls.so"',
    `modparam("tls", "certificate", "${cert.cert}")`,
    `modparam("tls", "private_key", "${cert.key}")`,
    'modparam("tls", "verify_certificate", 0)',
    'modparam("tls", "require_certificate", 0)',
    'modparam("tls", "tls_method", "TLSv1.2+")',
    '',
  ].join('\n');
  const cfg = join(dir, 'proxy-tls.cfg');
  writeFileSync(cfg, base.replace('loadmodule "tm.so"', `${tls}loadmodule "tm.so"`));
  return cfg;
}

interface Rig {
  s: SipFerry;
  client: SipClient;
  phone: Baresip;
  pc: RTCPeerConnection;
  uaPort: number;
  /** ferry's TLS port, when the test runs TLS. */
  tlsPort: number | undefined;
  wire: SipMessage[];
  /** The transport of each message on `wire`. */
  transports: string[];
}

/** Every message an account's UserAgent sends or receives, with its transport. */
function recordWire(ua: UserAgent): { wire: SipMessage[]; transports: string[] } {
  const wire: SipMessage[] = [];
  const transports: string[] = [];
  ua.on('sent', (m, _to, t) => { wire.push(m); transports.push(t); });
  ua.on('received', (m, _from, t) => { wire.push(m); transports.push(t); });
  return { wire, transports };
}

/** Closes what a baresip test opened (the handle, ferry, baresip, the browser) and removes its certificate folder. */
async function closePhoneTest(client: SipClient | undefined, s: SipFerry, phone: Baresip, pc: RTCPeerConnection, certDir: string): Promise<void> {
  await client?.close().catch(() => undefined);
  await s.f.stop();
  await phone.stop();
  await closePeer(pc);
  rmSync(certDir, { recursive: true, force: true });
}

async function withPhone(accountParams: string, run: (r: Rig) => Promise<void>, tls = false): Promise<void> {
  const certDir = mkdtempSync(join(tmpdir(), 'ferry-sip-tls-'));
  const cert = tls ? makeCertificate(certDir) : undefined;
  // One self-signed certificate for both ends, each trusting it (hostname 127.0.0.1 by its SAN).
  const s = await startSipFerry(cert ? { tls_cert: cert.cert, tls_key: cert.key, tls_ca: cert.cert } : {});
  const phone = await Baresip.start({ accountParams, ...(cert ? { transport: 'tls' as const, tls: { certificate: cert.agent, cafile: cert.cert } } : {}) });
  const pc = browserWithEvents(101);
  let client: SipClient | undefined;
  try {
    client = await SipClient.open(s.f);
    await registerGuest(client);
    const { wire, transports } = recordWire(s.sip.accountOf(client.handle)!.ua);
    const info = await client.info();
    await run({ s, client, phone, pc, uaPort: info['sip_udp_port'] as number, tlsPort: info['sip_tls_port'] ?? undefined, wire, transports });
    await expectCallsReleased(s, { noPeerConnection: true });
  } finally {
    await closePhoneTest(client, s, phone, pc, certDir);
  }
}

function browserAudio(pc: RTCPeerConnection): { audio: RTCRtpTransceiver; heard: Buffer[]; events: Buffer[] } {
  const audio = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
  const heard: Buffer[] = [];
  const events: Buffer[] = [];
  audio.onTrack.subscribe((track) => track.onReceiveRtp.subscribe((rtp) => {
    if (rtp.header.payloadType === 0) heard.push(rtp.payload);
    else events.push(rtp.payload);
  }));
  return { audio, heard, events };
}

/** The telephone-event payload type of the browser's audio m-line in `sdp`. */
function eventType(sdp: string): number {
  const pt = /a=rtpmap:(\d+) telephone-event\/8000/.exec(sdp)?.[1];
  assert.ok(pt, 'telephone-event negotiated with the browser');
  return Number(pt);
}

/** The keys of the SDP bodies on the wire, in order: one per direction. */
function sdesKeys(wire: SipMessage[]): string[] {
  return wire.flatMap((m) => [...m.body.toString('utf8').matchAll(/^a=crypto:\d+ AES_CM_128_HMAC_SHA1_(?:80|32) inline:([A-Za-z0-9+/=]+)/gm)].map((x) => x[1]!));
}

/**
 * RTP both ways: the browser's microphone (a PCMU packet each 20 ms) until baresip reports
 * receiving it (its status line averages over a few seconds), and baresip's sine at the
 * browser. Then RFC 4733 both ways: baresip's digit raises `dtmf` and reaches the browser as
 * events; the browser's digits (between its audio packets, as RTCDTMFSender sends them) make
 * baresip report them.
 */
async function mediaAndDigits(r: Rig, audio: RTCRtpTransceiver, heard: Buffer[], events: Buffer[], eventPt: number): Promise<void> {
  const mic = new BrowserMicrophone(audio, eventPt);
  mic.start();
  try {
    await until(() => r.phone.rxBitrate() > 0, 15_000, `baresip receiving the browser's RTP\n${r.phone.peer.output().slice(-1500)}`);
    await until(() => heard.length >= 50, 5000, 'the browser receiving baresip\'s RTP');
    // baresip's sine is not silence (PCMU silence is 0xFF/0x7F throughout).
    assert.ok(heard.some((p) => p.some((b) => b !== 0xff && b !== 0x7f)), 'the browser got baresip\'s tone');

    assert.ok((await r.phone.command('sndcode', '5')).ok);
    const dtmf = result(await r.client.event('dtmf'));
    assert.is(dtmf['signal'], '5');
    assert.ok(dtmf['duration'] > 0);
    await until(() => events.some((p) => p[0] === 5 && (p[1]! & 0x80) !== 0), 5000, 'baresip\'s digit at the browser, as events');

    await mic.digit(11);
    await mic.digit(1);
    await until(() => r.phone.dtmfHeard().length >= 2, 5000, `baresip hearing the browser's digits\n${JSON.stringify(r.phone.events.map((e) => [e.type, e.param]))}`);
    assert.is(r.phone.dtmfHeard(), '#1');
  } finally {
    mic.stop();
  }
}

/**
 * baresip (srtp-mand) dials `uri`: `incomingcall` says sdes_mandatory, the browser answers, and
 * the call is up at both ends (ICE + DTLS connected, webrtcup, baresip's CALL_ESTABLISHED).
 */
async function answerPhoneCall(r: Rig, uri: string): Promise<Json> {
  assert.ok((await r.phone.command('dial', uri)).ok);
  const incoming = await r.client.event('incomingcall', 15_000);
  assert.is(result(incoming)['srtp'], 'sdes_mandatory');
  await r.pc.setRemoteDescription(incoming['jsep']);
  await r.pc.setLocalDescription(await r.pc.createAnswer());
  await r.client.send({ request: 'accept' }, { type: 'answer', sdp: r.pc.localDescription!.sdp });
  await r.client.event('accepted');
  await connectionState(r.pc, 'connected');
  await r.client.core('webrtcup');
  await r.phone.event('CALL_ESTABLISHED');
  return incoming;
}

test('the browser calls baresip with sdes_mandatory: SRTP both ways, a key per direction, DTMF both ways', () =>
  withPhone('answermode=auto;mediaenc=srtp-mand', async (r) => {
    const { audio, heard, events } = browserAudio(r.pc);
    await r.pc.setLocalDescription(await r.pc.createOffer());
    await r.client.send({ request: 'call', uri: r.phone.uri, srtp: 'sdes_mandatory' }, { type: 'offer', sdp: r.pc.localDescription!.sdp });
    await r.client.event('calling');
    const accepted = await r.client.event('accepted', 15_000);
    await r.pc.setRemoteDescription(accepted['jsep']);
    await connectionState(r.pc, 'connected');
    await r.client.core('webrtcup');
    assert.is((await r.client.info())['media'][0]['srtp'], true);
    const keys = sdesKeys(r.wire);
    assert.ok(keys.length >= 2, `crypto lines in the offer and the answer: ${keys.length}`);
    assert.is.not(keys[0], keys[keys.length - 1], 'ferry\'s key and baresip\'s key differ');
    await mediaAndDigits(r, audio, heard, events, eventType(accepted['jsep']['sdp']));
    await r.client.send({ request: 'hangup' });
    assert.is(result(await r.client.event('hangup'))['code'], 200);
    await r.phone.event('CALL_CLOSED');
  }));

test('baresip calls ferry with srtp-mand: incomingcall says sdes_mandatory, the browser answers, SRTP and DTMF both ways', () =>
  withPhone('mediaenc=srtp-mand', async (r) => {
    const { audio, heard, events } = browserAudio(r.pc);
    const incoming = await answerPhoneCall(r, `sip:ferry@127.0.0.1:${r.uaPort}`);
    const keys = sdesKeys(r.wire);
    assert.ok(keys.length >= 2);
    assert.is.not(keys[0], keys[keys.length - 1]);
    await mediaAndDigits(r, audio, heard, events, eventType(incoming['jsep']['sdp']));
    assert.ok((await r.phone.command('hangup')).ok);
    assert.is(result(await r.client.event('hangup'))['code'], 200, 'baresip\'s BYE ended the call');
  }));

test('over TLS (sip:…;transport=tls, a certificate the test makes): the browser calls baresip with SRTP, media and DTMF both ways', () =>
  withPhone('answermode=auto;mediaenc=srtp-mand', async (r) => {
    const { audio, heard, events } = browserAudio(r.pc);
    assert.ok(r.tlsPort, 'the account listens on TLS');
    await r.pc.setLocalDescription(await r.pc.createOffer());
    await r.client.send({ request: 'call', uri: `sip:bob@127.0.0.1:${r.phone.tlsPort};transport=tls`, srtp: 'sdes_mandatory' }, { type: 'offer', sdp: r.pc.localDescription!.sdp });
    const accepted = await r.client.event('accepted', 15_000);
    const invite = r.wire.findIndex((m) => m.kind === 'request' && m.method === 'INVITE');
    assert.is(r.transports[invite], 'tls', 'the INVITE left over TLS');
    assert.match(r.wire[invite]!.headers.get('Contact') ?? '', /;transport=tls>$/);
    assert.match(r.wire[invite]!.headers.get('Via') ?? '', /^SIP\/2\.0\/TLS /);
    await r.pc.setRemoteDescription(accepted['jsep']);
    await connectionState(r.pc, 'connected');
    await r.client.core('webrtcup');
    await mediaAndDigits(r, audio, heard, events, eventType(accepted['jsep']['sdp']));
    await r.client.send({ request: 'hangup' });
    assert.is(result(await r.client.event('hangup'))['code'], 200);
    await r.phone.event('CALL_CLOSED');
    assert.ok(r.transports.every((t) => t === 'tls'), 'every message of the call over TLS');
  }, true));

test('over TLS: baresip calls ferry\'s TLS port (it checks ferry\'s certificate), SRTP and DTMF both ways, BYE over TLS', () =>
  withPhone('mediaenc=srtp-mand', async (r) => {
    const { audio, heard, events } = browserAudio(r.pc);
    const incoming = await answerPhoneCall(r, `sip:ferry@127.0.0.1:${r.tlsPort};transport=tls`);
    await mediaAndDigits(r, audio, heard, events, eventType(incoming['jsep']['sdp']));
    assert.ok((await r.phone.command('hangup')).ok);
    assert.is(result(await r.client.event('hangup'))['code'], 200);
    assert.ok(r.transports.length > 0 && r.transports.every((t) => t === 'tls'), 'every message of the call over TLS');
  }, true));

test('TLS through kamailio: ferry and baresip register over TLS (digest), ferry calls bob@ferry.test through the proxy, SRTP media and DTMF', async () => {
  const certDir = mkdtempSync(join(tmpdir(), 'ferry-sip-tls-'));
  const cert = makeCertificate(certDir);
  const port = await freePort();
  const tlsPort = await freePort();
  await kamailio.start(port, await freePort(), { cfg: tlsKamailioConfig(kamailio.workdir, cert), extraArgs: ['-l', `tls:127.0.0.1:${tlsPort}`] });
  const proxy = `sip:127.0.0.1:${tlsPort};transport=tls`;
  const s = await startSipFerry({ tls_cert: cert.cert, tls_key: cert.key, tls_ca: cert.cert });
  const phone = await Baresip.start({
    aor: 'sip:bob@ferry.test', transport: 'tls', tls: { certificate: cert.agent, cafile: cert.cert },
    registration: `regint=120;auth_user=bob;auth_pass=ferry-secret;outbound="${proxy}"`,
    accountParams: 'answermode=auto;mediaenc=srtp-mand',
  });
  const pc = browserWithEvents(101);
  let client: SipClient | undefined;
  try {
    await phone.registered();
    client = await SipClient.open(s.f);
    await client.send({ request: 'register', username: 'sip:alice@ferry.test', secret: 'ferry-secret', outbound_proxy: proxy, register_ttl: 300 });
    await client.event('registering');
    const ua = s.sip.accountOf(client.handle)!.ua;
    const { wire, transports } = recordWire(ua);
    await client.event('registered', 15_000);
    const registers = wire.filter((m) => m.kind === 'request' && m.method === 'REGISTER');
    const last = registers[registers.length - 1]!;
    assert.match(last.headers.get('Authorization') ?? '', /^Digest /, 'the challenge was answered');
    assert.match(last.headers.get('Contact') ?? '', /;transport=tls>/, 'the binding is a TLS Contact');
    assert.is(ua.udp, undefined, 'a TLS account has no UDP socket');

    const { audio, heard, events } = browserAudio(pc);
    await pc.setLocalDescription(await pc.createOffer());
    await client.send({ request: 'call', uri: 'sip:bob@ferry.test', srtp: 'sdes_mandatory' }, { type: 'offer', sdp: pc.localDescription!.sdp });
    const accepted = await client.event('accepted', 15_000);
    await pc.setRemoteDescription(accepted['jsep']);
    await connectionState(pc, 'connected');
    await client.core('webrtcup');
    const r: Rig = { s, client, phone, pc, uaPort: 0, tlsPort: undefined, wire, transports };
    await mediaAndDigits(r, audio, heard, events, eventType(accepted['jsep']['sdp']));
    await client.send({ request: 'hangup' });
    assert.is(result(await client.event('hangup'))['code'], 200);
    await phone.event('CALL_CLOSED');
    assert.ok(transports.every((t) => t === 'tls'), 'registration and call over TLS only');
    await expectCallsReleased(s);
  } finally {
    await closePhoneTest(client, s, phone, pc, certDir);
  }
});

test.run();
