/** RFC 3261 §17 transaction state tables driven by a manual clock, and §13.3.1.4 2xx retransmission. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from '../../src/time/Clock.js';
import { parseSipMessage } from '../../src/sip/SipParser.js';
import { makeResponse, type SipRequest, type SipResponse } from '../../src/sip/SipMessage.js';
import {
  ClientInviteTransaction, ClientNonInviteTransaction, DEFAULT_TIMERS,
  ServerInviteTransaction, ServerNonInviteTransaction, TransactionLayer,
} from '../../src/sip/Transactions.js';
import { InviteOkRetransmitter } from '../../src/sip/InviteOkRetransmitter.js';

const { t1, t2, t4 } = DEFAULT_TIMERS;

function req(method: string, branch = 'z9hG4bKtest1'): SipRequest {
  const r = parseSipMessage([
    `${method} sip:bob@127.0.0.1 SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:5060;branch=${branch}`,
    'From: <sip:alice@127.0.0.1>;tag=a1', 'To: <sip:bob@127.0.0.1>', 'Call-ID: tx-test', `CSeq: 7 ${method}`,
    'Max-Forwards: 70', 'Route: <sip:proxy.test;lr>', 'Content-Length: 0', '', '',
  ].join('\r\n'));
  if (!r.ok || r.message.kind !== 'request') throw new Error('fixture');
  return r.message;
}

const res = (r: SipRequest, status: number): SipResponse => makeResponse(r, status, undefined, status === 100 ? undefined : 'b1');

/** Times (relative to start) at which `sent` grew. */
function recorder(clock: ManualClock) {
  const start = clock.now();
  const times: number[] = [];
  const msgs: Array<SipRequest | SipResponse> = [];
  return { times, msgs, send: (m: SipRequest | SipResponse) => { times.push(clock.now() - start); msgs.push(m); } };
}

function tu() {
  const got = { responses: [] as number[], timeouts: 0, transportErrors: 0 };
  return {
    got,
    onResponse: (r: SipResponse) => got.responses.push(r.status),
    onTimeout: () => got.timeouts++,
    onTransportError: () => got.transportErrors++,
  };
}

const ci = suite('client INVITE transaction (§17.1.1)');

ci('Timer A doubles every retransmission (INVITE: no T2 cap) until Timer B = 64*T1', () => {
  const clock = new ManualClock();
  const rec = recorder(clock);
  const user = tu();
  let terminated = 0;
  const tx = new ClientInviteTransaction(req('INVITE'), rec.send, user, clock, DEFAULT_TIMERS, false, () => terminated++);
  clock.advance(64 * t1 + 1);
  assert.equal(rec.times, [0, 500, 1500, 3500, 7500, 15500, 31500]);
  assert.is(user.got.timeouts, 1);
  assert.is(tx.state, 'terminated');
  assert.is(terminated, 1);
  assert.is(clock.pendingTimers, 0);
});

ci('provisional stops retransmission; non-2xx is ACKed inside the transaction, retransmissions re-ACKed, Timer D', () => {
  const clock = new ManualClock();
  const rec = recorder(clock);
  const user = tu();
  const invite = req('INVITE');
  const tx = new ClientInviteTransaction(invite, rec.send, user, clock, DEFAULT_TIMERS, false, () => {});
  tx.receive(res(invite, 180));
  assert.is(tx.state, 'proceeding');
  clock.advance(20_000);
  assert.is(rec.msgs.length, 1, 'no retransmission in Proceeding');
  tx.receive(res(invite, 486));
  assert.is(tx.state, 'completed');
  const ack = rec.msgs[1] as SipRequest;
  assert.is(ack.method, 'ACK');
  assert.is(ack.headers.get('Via'), invite.headers.get('Via'), 'same branch as the INVITE (§17.1.1.3)');
  assert.is(ack.headers.get('CSeq'), '7 ACK');
  assert.match(ack.headers.get('To') ?? '', /tag=b1/);
  assert.is(ack.headers.get('Route'), '<sip:proxy.test;lr>');
  tx.receive(res(invite, 486));
  assert.is(rec.msgs.length, 3, 'retransmitted final → ACK again');
  assert.equal(user.got.responses, [180, 486], 'retransmission not passed up');
  clock.advance(31_999);
  assert.is(tx.state, 'completed');
  clock.advance(1);
  assert.is(tx.state, 'terminated', 'Timer D = 32 s on UDP');
});

ci('2xx terminates at once and is passed up; reliable transport: no Timer A, Timer D = 0', () => {
  const clock = new ManualClock();
  const rec = recorder(clock);
  const user = tu();
  const invite = req('INVITE');
  const tx = new ClientInviteTransaction(invite, rec.send, user, clock, DEFAULT_TIMERS, true, () => {});
  clock.advance(10_000);
  assert.is(rec.msgs.length, 1);
  tx.receive(res(invite, 200));
  assert.is(tx.state, 'terminated');
  assert.equal(user.got.responses, [200]);
  const tx2 = new ClientInviteTransaction(invite, rec.send, user, clock, DEFAULT_TIMERS, true, () => {});
  tx2.receive(res(invite, 500));
  assert.is(tx2.state, 'completed');
  clock.advance(0);
  assert.is(tx2.state, 'terminated');
  const tx3 = new ClientInviteTransaction(invite, rec.send, user, clock, DEFAULT_TIMERS, false, () => {});
  tx3.transportError();
  assert.is(tx3.state, 'terminated');
  assert.is(user.got.transportErrors, 1);
});

ci.run();

const cn = suite('client non-INVITE transaction (§17.1.2)');

cn('Timer E doubles to T2, Timer F = 64*T1 times out', () => {
  const clock = new ManualClock();
  const rec = recorder(clock);
  const user = tu();
  const tx = new ClientNonInviteTransaction(req('OPTIONS'), rec.send, user, clock, DEFAULT_TIMERS, false, () => {});
  clock.advance(64 * t1);
  assert.equal(rec.times, [0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
  assert.is(tx.state, 'terminated');
  assert.is(user.got.timeouts, 1);
});

cn('in Proceeding retransmits every T2; final → Completed, Timer K = T4 absorbs retransmissions', () => {
  const clock = new ManualClock();
  const rec = recorder(clock);
  const user = tu();
  const r = req('BYE');
  const tx = new ClientNonInviteTransaction(r, rec.send, user, clock, DEFAULT_TIMERS, false, () => {});
  clock.advance(600); // one retransmission at 500
  tx.receive(res(r, 100));
  assert.is(tx.state, 'proceeding');
  clock.advance(899); // E due at 1500 (1000 after the retransmission at 500)
  const before = rec.times.length;
  clock.advance(1);
  assert.is(rec.times.length, before + 1);
  clock.advance(t2);
  assert.is(rec.times.at(-1), 1500 + t2, 'in Proceeding the interval is T2');
  tx.receive(res(r, 200));
  assert.is(tx.state, 'completed');
  tx.receive(res(r, 200));
  assert.equal(user.got.responses, [100, 200]);
  clock.advance(t4 - 1);
  assert.is(tx.state, 'completed');
  clock.advance(1);
  assert.is(tx.state, 'terminated');
  assert.is(clock.pendingTimers, 0);
});

cn.run();

const si = suite('server INVITE transaction (§17.2.1)');

si('non-2xx final: Timer G doubles to T2, ACK absorbed → Confirmed, Timer I = T4', () => {
  const clock = new ManualClock();
  const rec = recorder(clock);
  let failures = 0;
  const invite = req('INVITE');
  const tx = new ServerInviteTransaction(invite, rec.send, { onFailure: () => failures++ }, clock, DEFAULT_TIMERS, false, () => {});
  tx.respond(res(invite, 100));
  tx.receive(invite); // retransmitted INVITE → last provisional again
  assert.is((rec.msgs[1] as SipResponse).status, 100);
  tx.respond(res(invite, 603));
  assert.is(tx.state, 'completed');
  clock.advance(15_600);
  // 603 at 0 (relative after the two 100s), then G: 500, 1000, 2000, 4000, 4000...
  const finals = rec.times.slice(2);
  assert.equal(finals, [0, 500, 1500, 3500, 7500, 11500, 15500]);
  tx.receive(req('ACK'));
  assert.is(tx.state, 'confirmed');
  const count = rec.msgs.length;
  clock.advance(4000);
  assert.is(rec.msgs.length, count, 'no more retransmissions after ACK');
  tx.receive(req('ACK'));
  assert.is(tx.state, 'confirmed', 'extra ACKs absorbed');
  clock.advance(t4 - 4000);
  assert.is(tx.state, 'terminated');
  assert.is(failures, 0);
  assert.ok(tx.history.includes('completed --ack--> confirmed'));
});

si('Timer H = 64*T1 without ACK reports a timeout; 2xx terminates at once', () => {
  const clock = new ManualClock();
  const rec = recorder(clock);
  const why: string[] = [];
  const invite = req('INVITE');
  const tx = new ServerInviteTransaction(invite, rec.send, { onFailure: (w) => why.push(w) }, clock, DEFAULT_TIMERS, false, () => {});
  tx.respond(res(invite, 486));
  clock.advance(64 * t1);
  assert.is(tx.state, 'terminated');
  assert.equal(why, ['timeout']);
  const tx2 = new ServerInviteTransaction(invite, rec.send, { onFailure: () => {} }, clock, DEFAULT_TIMERS, false, () => {});
  assert.ok(tx2.respond(res(invite, 200)));
  assert.is(tx2.state, 'terminated');
  assert.not.ok(tx2.respond(res(invite, 486)), 'no second final');
});

si.run();

const sn = suite('server non-INVITE transaction (§17.2.2)');

sn('Trying discards retransmissions; Completed resends the final until Timer J = 64*T1', () => {
  const clock = new ManualClock();
  const rec = recorder(clock);
  const r = req('MESSAGE');
  const tx = new ServerNonInviteTransaction(r, rec.send, { onFailure: () => {} }, clock, DEFAULT_TIMERS, false, () => {});
  tx.receive(r);
  assert.is(rec.msgs.length, 0);
  tx.respond(res(r, 200));
  tx.receive(r);
  assert.is(rec.msgs.length, 2);
  clock.advance(64 * t1 - 1);
  assert.is(tx.state, 'completed');
  clock.advance(1);
  assert.is(tx.state, 'terminated');
  const reliable = new ServerNonInviteTransaction(r, rec.send, { onFailure: () => {} }, clock, DEFAULT_TIMERS, true, () => {});
  reliable.respond(res(r, 200));
  clock.advance(0);
  assert.is(reliable.state, 'terminated', 'J = 0 on reliable transports');
});

sn.run();

const layer = suite('transaction layer matching (§17.1.3, §17.2.3)');

layer('responses match by branch + CSeq method; ACK for non-2xx reaches its INVITE transaction', () => {
  const clock = new ManualClock();
  const l = new TransactionLayer(clock);
  const user = tu();
  const invite = req('INVITE', 'z9hG4bKmatch');
  l.sendRequest(invite, () => {}, false, user);
  assert.ok(l.receiveResponse(res(invite, 180)));
  assert.not.ok(l.receiveResponse(res(req('INVITE', 'z9hG4bKother'), 180)), 'other branch');
  const cancel = req('CANCEL', 'z9hG4bKmatch');
  assert.not.ok(l.receiveResponse(res(cancel, 200)), 'same branch, other method');
  const sinv = req('INVITE', 'z9hG4bKsrv');
  const stx = l.createServer(sinv, () => {}, false, { onFailure: () => {} });
  stx.respond(res(sinv, 404));
  assert.ok(l.receiveRequest(req('ACK', 'z9hG4bKsrv')), 'ACK absorbed');
  assert.is(stx.state, 'confirmed');
  assert.ok(l.findInviteForCancel(req('CANCEL', 'z9hG4bKsrv')));
  assert.not.ok(l.receiveRequest(req('ACK', 'z9hG4bKnew')), 'ACK for a 2xx is not a transaction match');
});

layer.run();

const ok = suite('2xx retransmission until ACK (§13.3.1.4)');

ok('retransmits at T1 doubling to T2, stops on ACK', () => {
  const clock = new ManualClock();
  const rec = recorder(clock);
  const invite = req('INVITE');
  let noAck = 0;
  const rt = new InviteOkRetransmitter(res(invite, 200), rec.send, clock, DEFAULT_TIMERS, false, () => noAck++);
  clock.advance(8000);
  assert.equal(rec.times, [0, 500, 1500, 3500, 7500]);
  rt.acked();
  clock.advance(60_000);
  assert.is(rec.times.length, 5);
  assert.is(rt.state, 'acked');
  assert.is(noAck, 0);
  assert.is(clock.pendingTimers, 0);
});

ok('gives up after 64*T1 without ACK', () => {
  const clock = new ManualClock();
  const rec = recorder(clock);
  let noAck = 0;
  const rt = new InviteOkRetransmitter(res(req('INVITE'), 200), rec.send, clock, DEFAULT_TIMERS, false, () => noAck++);
  clock.advance(64 * t1);
  assert.is(rt.state, 'timedOut');
  assert.is(noAck, 1);
  assert.is(rec.times.at(-1), 31_500);
  assert.is(clock.pendingTimers, 0);
});

ok.run();
