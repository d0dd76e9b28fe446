/**
 * Call transfer (RFC 3515 REFER, RFC 3891 Replaces, RFC 3892 Referred-By)
 * through Janus's API, signalling only (browser-like SDP without a browser),
 * against sipp and an in-process SIP peer "carol" (ferry's own stack):
 * - blind, ferry the transferee: sipp calls the master handle and REFERs it
 *   to carol; the client gets `transfer{refer_id, refer_to, referred_by}`,
 *   follows it with `call{refer_id}` on a helper; carol gets Referred-By;
 *   sipp gets NOTIFY "100 Trying" then "200 OK" (terminated), and hangs up;
 * - attended, ferry the transferor: sipp calls the master, a helper calls
 *   carol, `transfer{uri: carol, replace: <the helper's Call-ID>}` sends a
 *   REFER whose Refer-To carries Replaces with the helper dialog's Call-ID and
 *   tags; sipp's NOTIFYs come back as `notify` events;
 * - ferry the transfer target: an INVITE with Replaces and Referred-By gives
 *   `incomingcall` with `replaces` and `referred_by`; a declined transfer
 *   sends a final NOTIFY 603; a REFER without a usable Refer-To gets 400.
 * Every call, referral and port is gone at the end.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import type { Call, InDialogRequestEvent } from '../../src/sip/Call.js';
import type { SipMessage, SipRequest } from '../../src/sip/SipMessage.js';
import { UserAgent } from '../../src/sip/UserAgent.js';
import { freePort, waitFor, type Peer } from '../sip/helpers.js';
import { SipClient, registerGuest, useSippRuns, expectSippSuccess, pluginScenario, sipp, startSipFerry, until, webrtcSdp, type SipFerry } from './helpers.js';

const test = suite('SIP plugin: blind and attended transfers');
const result = (e: Record<string, any>) => e['plugindata']['data']['result'] as Record<string, any>;

const sippRuns = useSippRuns(test, 'ferry-sip-transfer-');
const peers = sippRuns.peers;

function peerSdp(port = 9): string {
  return ['v=0', 'o=carol 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', `m=audio ${port} RTP/AVP 0`, 'a=rtpmap:0 PCMU/8000', 'a=sendrecv', ''].join('\r\n');
}

interface Rig {
  s: SipFerry;
  master: SipClient;
  helper: SipClient;
  uaPort: number;
  /** carol: answers every INVITE 200 and records them. */
  carol: UserAgent;
  carolCalls: Call[];
  /** What the master's account sent and received. */
  wire: SipMessage[];
}

async function withRig(run: (r: Rig) => Promise<void>): Promise<void> {
  const s = await startSipFerry();
  const carol = await UserAgent.create({ host: '127.0.0.1', user: 'carol' });
  const carolCalls: Call[] = [];
  carol.on('incomingCall', (call) => {
    carolCalls.push(call);
    carol.answer(call, 200, peerSdp());
  });
  let master: SipClient | undefined;
  let helper: SipClient | undefined;
  try {
    master = await SipClient.open(s.f);
    const registered = result(await registerGuest(master));
    helper = await SipClient.open(s.f, master.ws);
    await helper.send({ request: 'register', type: 'helper', username: 'sip:ferry@127.0.0.1', master_id: registered['master_id'] });
    assert.is(result(await helper.event('registered'))['helper'], true);
    const wire: SipMessage[] = [];
    const ua = s.sip.accountOf(master.handle)!.ua;
    ua.on('sent', (m) => wire.push(m));
    ua.on('received', (m) => wire.push(m));
    const uaPort = (await master.info())['sip_udp_port'] as number;
    await run({ s, master, helper, uaPort, carol, carolCalls, wire });
    await until(() => s.sip.stats().activeCalls === 0, 5000, 'every call ended');
    assert.is(s.sip.stats().referrals, 0, 'no referral left');
    await until(() => s.f.ferry.leasedPorts() === 0, 5000, 'every port released');
  } finally {
    await helper?.destroy().catch(() => undefined);
    await master?.close().catch(() => undefined);
    await s.f.stop();
    await carol.close();
  }
}

async function sippCalls(r: Rig, scenario: string, keys: string[] = []): Promise<Peer> {
  const port = await freePort();
  const caller = sipp(['-sf', pluginScenario(scenario), ...keys, '-s', 'ferry', '-p', String(port), '-m', '1', `127.0.0.1:${r.uaPort}`], sippRuns.workdir, 40_000);
  peers.push(caller);
  const incoming = await r.master.event('incomingcall');
  assert.match(result(incoming)['username'], /^sip:sipp@/);
  await r.master.send({ request: 'accept' }, { type: 'answer', sdp: webrtcSdp('answer') });
  await r.master.event('accepted');
  await established(r.master);
  return caller;
}

/** Until the handle's call is established (an accepted incoming call waits for the caller's ACK). */
async function established(client: SipClient): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await client.info())['slot'] === 'established') return;
    await new Promise((res) => setTimeout(res, 20));
  }
  throw new Error('the call never got established');
}

test('blind, ferry the transferee: transfer event, call with refer_id on a helper, NOTIFY 100 then 200 to the transferor', () =>
  withRig(async (r) => {
    const carolUri = `sip:carol@127.0.0.1:${r.carol.udp!.local.port}`;
    const transferor = await sippCalls(r, 'uac-refer-blind.xml', ['-key', 'carol_uri', carolUri]);
    const transfer = await r.master.event('transfer');
    const t = result(transfer);
    assert.is(t['refer_to'], carolUri);
    assert.match(t['referred_by'], /^sip:sipp@127\.0\.0\.1/);
    assert.is(t['replaces'], undefined, 'a blind transfer replaces nothing');
    assert.type(t['refer_id'], 'number');
    assert.is(r.s.sip.stats().referrals, 1);

    await r.helper.send({ request: 'call', uri: t['refer_to'], refer_id: t['refer_id'] }, { type: 'offer', sdp: webrtcSdp('offer') });
    await r.helper.event('calling');
    await r.helper.event('accepted');
    assert.match(r.carolCalls[0]!.invite.headers.get('Referred-By') ?? '', /sip:sipp@127\.0\.0\.1/, 'carol learns who referred the call');
    await expectSippSuccess(transferor, 'blind transfer: 202, NOTIFY 100, NOTIFY 200, BYE');
    assert.is(result(await r.master.event('hangup'))['code'], 200, 'the transferor hung up');
    const notifies = r.wire.filter((m): m is SipRequest => m.kind === 'request' && m.method === 'NOTIFY');
    assert.equal(notifies.map((n) => n.headers.get('Event')), ['refer;id=2', 'refer;id=2']);
    assert.equal(notifies.map((n) => n.headers.get('Content-Type')), ['message/sipfrag;version=2.0', 'message/sipfrag;version=2.0']);
    await r.helper.send({ request: 'hangup' });
    await r.helper.event('hangup');
  }));

test('attended, ferry the transferor: REFER with Replaces from the helper\'s dialog; the transferee\'s NOTIFYs as notify events', () =>
  withRig(async (r) => {
    const transferee = await sippCalls(r, 'uac-refer-attended.xml');
    const carolUri = `sip:carol@127.0.0.1:${r.carol.udp!.local.port}`;
    await r.helper.send({ request: 'call', uri: carolUri }, { type: 'offer', sdp: webrtcSdp('offer') });
    const calling = await r.helper.event('calling');
    const helperCallId = calling['plugindata']['data']['call_id'] as string;
    await r.helper.event('accepted');

    await r.master.send({ request: 'transfer', uri: carolUri, replace: helperCallId });
    await r.master.event('transferring');
    const first = result(await r.master.event('notify'));
    assert.equal([first['notify'], first['substate'], first['content']], ['refer', 'active', 'SIP/2.0 100 Trying\r\n']);
    const second = result(await r.master.event('notify'));
    assert.equal([second['notify'], second['substate'], second['content-type']], ['refer', 'terminated', 'message/sipfrag;version=2.0']);
    assert.match(second['content'], /^SIP\/2\.0 200 OK/);

    const refer = r.wire.find((m): m is SipRequest => m.kind === 'request' && m.method === 'REFER');
    const carolDialog = r.carolCalls[0]!.dialog!;
    // Replaces as carol sees the dialog (RFC 3891 §3): carol's tag is the to-tag, ferry's the from-tag.
    const replaces = encodeURIComponent(`${helperCallId};to-tag=${carolDialog.id.localTag};from-tag=${carolDialog.id.remoteTag}`);
    assert.is(refer?.headers.get('Refer-To'), `<${carolUri}?Replaces=${replaces}>`);
    assert.is(refer?.headers.get('Referred-By'), '<sip:ferry@127.0.0.1>');

    await r.master.send({ request: 'hangup' });
    await r.master.event('hangup');
    await expectSippSuccess(transferee, 'attended transfer: REFER with Replaces, 202, NOTIFYs');
    await r.helper.send({ request: 'hangup' });
    await r.helper.event('hangup');
    await r.master.send({ request: 'transfer', uri: carolUri, replace: 'no-such-call' });
    assert.is((await r.master.event('error'))['plugindata']['data']['error_code'], 447, 'no call to transfer any more');
  }));

test('ferry the target: incomingcall with replaces and referred_by; a declined transfer is a final NOTIFY 603; a bad Refer-To gets 400', () =>
  withRig(async (r) => {
    // An INVITE with Replaces (Require: replaces is supported, RFC 3891 §4) and Referred-By.
    const invite = r.carol.invite(`sip:ferry@127.0.0.1:${r.uaPort}`, peerSdp(), {
      headers: [['Replaces', 'old-call@x;to-tag=a;from-tag=b'], ['Require', 'replaces'], ['Referred-By', '<sip:dave@127.0.0.1>']],
    });
    const incoming = result(await r.master.event('incomingcall'));
    assert.is(incoming['replaces'], 'old-call@x');
    assert.is(incoming['referred_by'], 'sip:dave@127.0.0.1');
    await r.master.send({ request: 'accept' }, { type: 'answer', sdp: webrtcSdp('answer') });
    await r.master.event('accepted');
    await waitFor(invite, 'accepted', 5000);

    // carol REFERs ferry elsewhere; the client declines it: NOTIFY with 603, subscription terminated.
    const notifies: InDialogRequestEvent[] = [];
    invite.on('notify', (ev) => notifies.push(ev));
    const refer = await r.carol.refer(invite, '<sip:eve@127.0.0.1>', [['Referred-By', '<sip:carol@127.0.0.1>']]);
    assert.is(refer.code, 202);
    const transfer = result(await r.master.event('transfer'));
    await r.master.send({ request: 'decline', refer_id: transfer['refer_id'] });
    assert.is(result(await r.master.event('declining'))['code'], 603);
    await until(() => notifies.length >= 2, 5000, 'NOTIFY 100, then 603');
    assert.equal(notifies.map((n) => n.body), ['SIP/2.0 100 Trying\r\n', 'SIP/2.0 603 Decline\r\n']);
    assert.match(notifies[1]!.request.headers.get('Subscription-State') ?? '', /^terminated/);
    await r.helper.send({ request: 'call', uri: 'sip:eve@127.0.0.1', refer_id: transfer['refer_id'] }, { type: 'offer', sdp: webrtcSdp('offer') });
    assert.is((await r.helper.event('error'))['plugindata']['data']['error_code'], 444, 'a declined transfer cannot be followed');

    // A REFER without a SIP Refer-To is refused.
    assert.is((await r.carol.refer(invite, '<mailto:eve@example.invalid>')).code, 400);
    assert.is(r.s.sip.stats().referrals, 0);
    const ended = waitFor(invite, 'terminated', 5000);
    r.carol.bye(invite);
    await ended;
    await r.master.event('hangup');
  }));

test.run();
