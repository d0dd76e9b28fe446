/**
 * The SIP plugin's Janus API without media: error codes (442–454), decline
 * codes, helpers (master_id, calls to a free helper, 486 + missed_call when
 * all are busy), and in-call requests seen on the wire of an in-process SIP
 * peer: dtmf_info (INFO application/dtmf-relay), incoming DTMF INFO, hold
 * (re-INVITE a=sendonly), MESSAGE both ways.
 */
import type { Json } from '../helpers/http.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import type { Call, InDialogRequestEvent } from '../../src/sip/Call.js';
import { UserAgent } from '../../src/sip/UserAgent.js';
import { rawUdp, waitFor } from '../sip/helpers.js';
import { SipClient, startSipFerry, until, webrtcSdp } from './helpers.js';

const data = (e: Record<string, any>) => e['plugindata']['data'] as Record<string, any>;

function peerSdp(port: number, direction = 'sendrecv'): string {
  return ['v=0', 'o=peer 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', `m=audio ${port} RTP/AVP 0`, 'a=rtpmap:0 PCMU/8000', `a=${direction}`, ''].join('\r\n');
}

async function expectError(client: SipClient, body: Json, code: number, jsep?: Json): Promise<string> {
  await client.send(body, jsep);
  const e = await client.event('error');
  assert.is(data(e)['error_code'], code, `${JSON.stringify(body)} → ${JSON.stringify(data(e))}`);
  return data(e)['error'] as string;
}

test('error codes: 442 unknown/unsupported, 443 missing, 444 invalid, 445 registered twice, 446 bad address, 447 wrong state, 448 missing SDP, 453 helper, 454 call-id', async () => {
  const s = await startSipFerry();
  let client: SipClient | undefined;
  try {
    client = await SipClient.open(s.f);
    await expectError(client, {}, 443);
    await expectError(client, { request: 'dance' }, 442);
    await expectError(client, { request: 'register' }, 443);
    await expectError(client, { request: 'register', username: 'alice' }, 446);
    await expectError(client, { request: 'register', username: 'sip:alice@127.0.0.1', type: 'guest', send_register: true }, 444);
    await expectError(client, { request: 'register', username: 'sip:alice@127.0.0.1', secret: 'x', force_udp: true, force_tcp: true }, 444);
    await expectError(client, { request: 'register', username: 'sip:alice@127.0.0.1', register_ttl: 'long' }, 444);
    await expectError(client, { request: 'register', type: 'helper' }, 443);
    await expectError(client, { request: 'register', type: 'helper', master_id: 999 }, 453);
    await expectError(client, { request: 'call', uri: 'sip:bob@127.0.0.1' }, 447, { type: 'offer', sdp: webrtcSdp('offer') });
    await until(() => s.f.ferry.webrtc.count === 0, 2000, 'the refused call\'s PeerConnection closed');
    await expectError(client, { request: 'hangup' }, 447);
    await expectError(client, { request: 'accept' }, 447);
    await client.send({ request: 'register', type: 'guest', username: 'sip:alice@127.0.0.1' });
    await client.event('registered');
    await expectError(client, { request: 'register', type: 'guest', username: 'sip:alice@127.0.0.1' }, 445);
    await expectError(client, { request: 'call', uri: 'not a uri' }, 446, { type: 'offer', sdp: webrtcSdp('offer') });
    await expectError(client, { request: 'call', uri: 'sip:bob@127.0.0.1' }, 448);
    await expectError(client, { request: 'dtmf_info', digit: '5' }, 447);
    await expectError(client, { request: 'transfer', uri: 'sip:carol@127.0.0.1' }, 447);
    await expectError(client, { request: 'decline', refer_id: 77 }, 444);
    await expectError(client, { request: 'decline', code: 'busy' }, 444);
    assert.is(s.sip.stats().activeCalls, 0);
    assert.is(s.f.ferry.leasedPorts(), 0);
  } finally {
    await client?.close().catch(() => undefined);
    await s.f.stop();
  }
});

test('decline: a code <= 399 is replaced by 486; hold, DTMF, INFO and MESSAGE in a call; 454 for another call-id', async () => {
  const s = await startSipFerry();
  const peer = await UserAgent.create({ host: '127.0.0.1', user: 'peer' });
  const sink = await rawUdp();
  let client: SipClient | undefined;
  try {
    client = await SipClient.open(s.f);
    await client.send({ request: 'register', type: 'guest', username: 'sip:alice@127.0.0.1' });
    await client.event('registered');
    const target = `sip:alice@127.0.0.1:${(await client.info())['sip_udp_port']}`;

    const first = peer.invite(target, null);
    await client.event('incomingcall');
    const declined = waitFor(first, 'failed', 5000);
    await client.send({ request: 'decline', code: 200 });
    assert.is(data(await client.event('declining'))['result']['code'], 486);
    assert.is((await declined)[0], 486);
    await client.event('hangup');

    // An established call (the peer offered).
    const call = peer.invite(target, peerSdp(sink.port));
    const inc = await client.event('incomingcall');
    const callId = data(inc)['call_id'] as string;
    assert.is(callId, call.callId);
    assert.is(inc['jsep']['type'], 'offer');
    await expectError(client, { request: 'hangup', call_id: 'someone-else' }, 454);
    const answered = waitFor(call, 'accepted', 5000);
    await client.send({ request: 'accept' }, { type: 'answer', sdp: webrtcSdp('answer', { pt: 0 }) });
    await client.event('accepted');
    const [, answer] = await answered;
    assert.match(answer ?? '', /m=audio [1-9]\d* RTP\/AVP 0/);
    await until(() => s.sip.stats().activeCalls === 1 && call.state === 'established', 3000, 'established');

    // dtmf_info → INFO application/dtmf-relay.
    const info = waitFor(call, 'info', 5000);
    await client.send({ request: 'dtmf_info', digit: '7', duration: 200 });
    await client.event('dtmfsent');
    const [dtmf] = await info;
    assert.is(dtmf.contentType, 'application/dtmf-relay');
    assert.match(dtmf.body ?? '', /^Signal=7\r\nDuration=200/);
    await expectError(client, { request: 'dtmf_info', digit: '77' }, 444);

    // DTMF from the SIP peer → `dtmf`; other INFO → `info`.
    await peer.info(call, 'application/dtmf-relay', 'Signal=#\r\nDuration=100\r\n');
    const got = data(await client.event('dtmf'))['result'];
    assert.is(got['signal'], '#');
    assert.is(got['duration'], 100);
    await peer.info(call, 'application/x-test', 'hello');
    assert.is(data(await client.event('info'))['result']['content'], 'hello');

    // hold → re-INVITE with a=sendonly; unhold → a=sendrecv.
    const reoffers: InDialogRequestEvent[] = [];
    call.on('reinvite', (ev) => {
      reoffers.push(ev);
      ev.respond(200, peerSdp(sink.port, ev.body?.includes('a=sendonly') ? 'recvonly' : 'sendrecv'));
    });
    await client.send({ request: 'hold' });
    assert.is(data(await client.event('holding'))['result']['direction'], 'sendonly');
    await until(() => reoffers.length === 1, 3000, 're-INVITE for hold');
    assert.match(reoffers[0]!.body ?? '', /a=sendonly/);
    await client.send({ request: 'unhold' });
    await client.event('resuming');
    await until(() => reoffers.length === 2, 3000, 're-INVITE for unhold');
    assert.match(reoffers[1]!.body ?? '', /a=sendrecv/);

    // MESSAGE in the dialog both ways.
    const msg = waitFor(call, 'message', 5000);
    await client.send({ request: 'message', content: 'hi peer' });
    await client.event('messagesent');
    assert.is((await msg)[0].body, 'hi peer');
    assert.is(data(await client.event('messagedelivery'))['result']['code'], 200);
    await peer.message(call, 'text/plain', 'hi browser');
    assert.is(data(await client.event('message'))['result']['content'], 'hi browser');

    // The peer re-INVITEs with a=sendonly (holds ferry): ferry answers recvonly by itself.
    const out = await peer.reinvite(call, peerSdp(sink.port, 'sendonly').replace('o=peer 1 1', 'o=peer 1 2'));
    assert.is(out.code, 200);
    assert.match(out.response?.body.toString() ?? '', /a=recvonly/);

    peer.bye(call);
    assert.is(data(await client.event('hangup'))['result']['code'], 200);
    await until(() => s.f.ferry.leasedPorts() === 0, 3000, 'ports released');
  } finally {
    await client?.close().catch(() => undefined);
    await s.f.stop();
    await peer.close();
    sink.close();
  }
});

test('helpers: calls go to the master, then to a free helper; with all busy the caller gets 486 and the master missed_call', async () => {
  const s = await startSipFerry();
  const peer = await UserAgent.create({ host: '127.0.0.1', user: 'peer' });
  let master: SipClient | undefined;
  let helper: SipClient | undefined;
  try {
    master = await SipClient.open(s.f);
    await master.send({ request: 'register', type: 'guest', username: 'sip:alice@127.0.0.1' });
    const reg = data(await master.event('registered'))['result'];
    const masterId = reg['master_id'] as number;
    assert.ok(masterId > 0);
    helper = await SipClient.open(s.f, master.ws);
    await helper.send({ request: 'register', type: 'helper', username: 'sip:alice@127.0.0.1', master_id: masterId });
    const hreg = data(await helper.event('registered'))['result'];
    assert.is(hreg['helper'], true);
    await expectError(helper, { request: 'register', type: 'helper', master_id: masterId + 100 }, 453);
    const target = `sip:alice@127.0.0.1:${(await master.info())['sip_udp_port']}`;

    const calls: Call[] = [peer.invite(target, null)];
    await master.event('incomingcall');
    calls.push(peer.invite(target, null));
    await helper.event('incomingcall');
    const third = peer.invite(target, null);
    const [code] = await waitFor(third, 'failed', 5000);
    assert.is(code, 486);
    const missed = data(await master.event('missed_call'))['result'];
    assert.match(missed['caller'], /^sip:peer@127\.0\.0\.1/);

    // The master goes away: its helper's call ends and the helper is no longer one.
    const helperCallEnded = waitFor(calls[1]!, 'terminated', 5000);
    await master.send({ request: 'decline' });
    await master.event('hangup');
    await master.destroy();
    await helperCallEnded;
    await helper.event('unregistered');
    await until(() => s.sip.stats().activeCalls === 0 && s.sip.stats().accounts === 0, 5000, 'all slots idle, account closed');
  } finally {
    await helper?.destroy().catch(() => undefined);
    await master?.close().catch(() => undefined);
    await s.f.stop();
    await peer.close();
  }
});

test.run();
