/** Two UserAgents talking over 127.0.0.1 (UDP and TCP), plus raw broken requests answered 400. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { UserAgent } from '../../src/sip/UserAgent.js';
import type { Call } from '../../src/sip/Call.js';
import { parseSipMessage } from '../../src/sip/SipParser.js';
import { SDP_ANSWER, SDP_OFFER, rawUdp, until, waitFor } from './helpers.js';

const test = suite('UserAgent over loopback');

let alice: UserAgent;
let bob: UserAgent;
const bobUri = () => `sip:bob@127.0.0.1:${bob.udp?.local.port}`;

test.before.each(async () => {
  alice = await UserAgent.create({ host: '127.0.0.1', user: 'alice', userAgent: 'ferry-test', tcpPort: 0 });
  bob = await UserAgent.create({ host: '127.0.0.1', user: 'bob', tcpPort: 0 });
});

test.after.each(async () => {
  await alice.close();
  await bob.close();
});

test('call with SDP: 180, 200+answer, ACK, in-dialog INFO/MESSAGE, BYE', async () => {
  bob.on('incomingCall', (call) => {
    assert.not.ok(call.offerless);
    assert.is(call.remoteSdp, SDP_OFFER);
    bob.answer(call, 180);
    bob.answer(call, 200, SDP_ANSWER);
  });
  const incoming = waitFor(bob, 'incomingCall');
  const call = alice.invite(bobUri(), SDP_OFFER);
  const provisional = waitFor(call, 'provisional', 5000, (r) => r.status === 180);
  const [res, sdp] = await waitFor(call, 'accepted');
  await provisional;
  assert.is(res.status, 200);
  assert.is(sdp, SDP_ANSWER);
  const [bobCall] = await incoming;
  await waitFor(bobCall, 'confirmed');
  assert.is(bobCall.state, 'established');
  assert.is(call.state, 'established');

  const infos: string[] = [];
  bobCall.on('info', (ev) => infos.push(`${ev.contentType}|${ev.body}`));
  const info = await alice.info(call, 'application/dtmf-relay', 'Signal=5\r\nDuration=160');
  assert.is(info.code, 200);
  assert.equal(infos, ['application/dtmf-relay|Signal=5\r\nDuration=160']);
  bobCall.on('message', (ev) => ev.respond(202));
  assert.is((await bob.message(bobCall, 'text/plain', 'hé')).code, 200, 'alice auto-answers MESSAGE 200');
  assert.is((await alice.message(call, 'text/plain', 'yo')).code, 202);

  const ended = waitFor(bobCall, 'terminated');
  alice.bye(call);
  const [info2] = await ended;
  assert.equal(info2, { by: 'remote', code: 200, reason: 'BYE' });
  assert.is(call.state, 'terminated');
  assert.is(call.termination?.by, 'local');
});

test('offerless INVITE: 200 carries our offer, the ACK carries the answer', async () => {
  bob.on('incomingCall', (c) => {
    assert.ok(c.offerless);
    assert.is(c.remoteSdp, null);
    bob.answer(c, 200, SDP_OFFER);
  });
  const incoming = waitFor(bob, 'incomingCall');
  const call = alice.invite(bobUri(), null);
  const [, offer] = await waitFor(call, 'accepted');
  assert.is(offer, SDP_OFFER);
  const [bobCall] = await incoming;
  const confirmed = waitFor(bobCall, 'confirmed');
  alice.ack(call, SDP_ANSWER);
  const [, answer] = await confirmed;
  assert.is(answer, SDP_ANSWER);
  assert.is(bobCall.remoteSdp, SDP_ANSWER);
  alice.bye(call);
  await waitFor(bobCall, 'terminated');
});

test('lesson §1 at the UA: two declined offerless INVITEs, then a third call is accepted', async () => {
  let n = 0;
  bob.on('incomingCall', (c) => {
    n++;
    if (n <= 2) bob.answer(c, 603);
    else bob.answer(c, 200, c.offerless ? SDP_OFFER : SDP_ANSWER);
  });
  for (let i = 0; i < 2; i++) {
    const c = alice.invite(bobUri(), null);
    const [code] = await waitFor(c, 'failed');
    assert.is(code, 603);
    assert.is(c.state, 'terminated');
  }
  const third = alice.invite(bobUri(), SDP_OFFER);
  const [res] = await waitFor(third, 'accepted');
  assert.is(res.status, 200);
  alice.bye(third);
});

test('CANCEL after 180: caller gets 487, callee terminated by remote', async () => {
  let bobCall: Call | undefined;
  bob.on('incomingCall', (c) => { bobCall = c; bob.answer(c, 180); });
  const call = alice.invite(bobUri(), SDP_OFFER);
  await waitFor(call, 'provisional', 5000, (r) => r.status === 180);
  alice.cancel(call);
  const [code] = await waitFor(call, 'failed');
  assert.is(code, 487);
  await until(() => bobCall?.state === 'terminated', 3000, 'callee terminated');
  assert.equal(bobCall?.termination, { by: 'remote', code: 487, reason: 'Request Terminated' });
});

test('re-INVITE answered by the application; unhandled UPDATE gets 488', async () => {
  bob.on('incomingCall', (c) => bob.answer(c, 200, SDP_ANSWER));
  const incoming = waitFor(bob, 'incomingCall');
  const call = alice.invite(bobUri(), SDP_OFFER);
  await waitFor(call, 'accepted');
  const [bobCall] = await incoming;
  bobCall.on('reinvite', (ev) => ev.respond(200, SDP_ANSWER.replace('40002', '40004')));
  const r = await alice.reinvite(call, SDP_OFFER.replace('40000', '40010'));
  assert.is(r.code, 200);
  assert.match(r.response?.body.toString() ?? '', /40004/);
  assert.is((await alice.update(call, SDP_OFFER)).code, 488);
  alice.bye(call);
});

test('over TCP: call, out-of-dialog MESSAGE', async () => {
  bob.on('incomingCall', (c) => bob.answer(c, 200, SDP_ANSWER));
  const call = alice.invite(`sip:bob@127.0.0.1:${bob.tcp?.local.port};transport=tcp`, SDP_OFFER);
  const [res] = await waitFor(call, 'accepted');
  assert.match(res.headers.get('Via') ?? '', /^SIP\/2\.0\/TCP /);
  const texts: string[] = [];
  bob.on('message', (ev) => texts.push(`${ev.from}|${ev.body}`));
  const m = await alice.message(`sip:bob@127.0.0.1:${bob.tcp?.local.port};transport=tcp`, 'text/plain', 'über');
  assert.is(m.code, 200);
  assert.equal(texts, [`sip:alice@127.0.0.1:${alice.udp?.local.port}|über`]);
  alice.bye(call);
  await until(() => call.state === 'terminated', 2000);
});

test('requests nobody handles: 405 (unknown method), 481 (no dialog), 480 (no listener)', async () => {
  const raw = await rawUdp();
  try {
    const port = bob.udp?.local.port ?? 0;
    const mk = (method: string, toTag = '') => [
      `${method} sip:bob@127.0.0.1:${port} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${raw.port};branch=z9hG4bK${method}${toTag};rport`,
      'From: <sip:x@127.0.0.1>;tag=f', `To: <sip:bob@127.0.0.1>${toTag ? `;tag=${toTag}` : ''}`, `Call-ID: c-${method}`, `CSeq: 1 ${method}`,
      'Contact: <sip:x@127.0.0.1>', 'Max-Forwards: 70', 'Content-Length: 0', '', '',
    ].join('\r\n');
    raw.send(mk('PUBLISH'), port);
    raw.send(mk('BYE', 'nope'), port);
    raw.send(mk('INVITE'), port);
    await until(() => raw.received.length >= 4, 3000, 'responses');
    const statuses = raw.received.map((b) => { const r = parseSipMessage(b); return r.ok && r.message.kind === 'response' ? r.message.status : 0; });
    assert.ok(statuses.includes(405));
    assert.ok(statuses.includes(481));
    assert.ok(statuses.includes(100));
    assert.ok(statuses.includes(480));
    const r405 = raw.received.map((b) => parseSipMessage(b)).find((r) => r.ok && r.message.kind === 'response' && r.message.status === 405);
    assert.ok(r405?.ok && /INVITE/.test(r405.message.headers.get('Allow') ?? ''));
    assert.ok(r405?.ok && new RegExp(`rport=${raw.port}`).test(r405.message.headers.get('Via') ?? ''), 'rport filled (RFC 3581)');
  } finally {
    raw.close();
  }
});

test('fuzzed requests: the UA answers 400 where it can, never crashes, keeps working', async () => {
  const raw = await rawUdp();
  try {
    const port = bob.udp?.local.port ?? 0;
    let parseErrors = 0;
    let answered = 0;
    bob.on('parseError', (_e, _from, a) => { parseErrors++; if (a) answered++; });
    const base = (i: number) => [
      `INVITE sip:bob@127.0.0.1:${port} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${raw.port};branch=z9hG4bKfz${i};rport`,
      'From: <sip:x@127.0.0.1>;tag=f', 'To: <sip:bob@127.0.0.1>', `Call-ID: fz-${i}`, 'CSeq: 1 INVITE', 'Max-Forwards: 70',
    ];
    const broken = [
      (i: number) => [...base(i), 'Content-Length: 500', '', 'short'].join('\r\n'),
      (i: number) => [...base(i).map((l) => l.replace('1 INVITE', '1 BYE')), 'Content-Length: 0', '', ''].join('\r\n'),
      (i: number) => [...base(i).map((l) => l.replace('SIP/2.0\r', 'SIP/9.9\r')).map((l, k) => (k === 0 ? l.replace('SIP/2.0', 'SIP/9.9') : l)), 'Content-Length: 0', '', ''].join('\r\n'),
      (i: number) => [...base(i), 'Max-Forwards: x', 'Content-Length: 0', '', ''].join('\r\n'),
      () => 'complete garbage \u0000\u0001\r\n\r\n',
      (i: number) => base(i).join('\r\n'),
    ];
    const N = 600;
    for (let i = 0; i < N; i++) {
      raw.send(broken[i % broken.length]!(i), port);
      // Paced: a loopback burst beyond the kernel receive buffer (rmem_default) would be dropped.
      if (i % 10 === 9) await new Promise((r) => setTimeout(r, 3));
    }
    const expectAnswered = Math.floor(N / broken.length) * 4;
    await until(() => raw.received.length >= expectAnswered, 10_000, `${expectAnswered} error responses (got ${raw.received.length}, parse errors ${parseErrors}, answered ${answered})`);
    const statuses = new Set(raw.received.map((b) => { const r = parseSipMessage(b); return r.ok && r.message.kind === 'response' ? r.message.status : 0; }));
    assert.equal([...statuses].sort(), [400, 505]);
    assert.is(answered, expectAnswered);
    assert.is(parseErrors, N);
    // Still works afterwards.
    bob.on('incomingCall', (c) => bob.answer(c, 486));
    const c = alice.invite(bobUri(), SDP_OFFER);
    const [code] = await waitFor(c, 'failed');
    assert.is(code, 486);
  } finally {
    raw.close();
  }
});

test.run();
