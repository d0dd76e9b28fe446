/**
 * The UserAgent against a real SIP peer: sipp (Debian `sip-tester`) on 127.0.0.1.
 * Missing sipp is a failure (CI installs it with .ci/install-test-peers.sh).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserAgent } from '../../src/sip/UserAgent.js';
import type { Call } from '../../src/sip/Call.js';
import type { SipMessage } from '../../src/sip/SipMessage.js';
import { SDP_OFFER, freePort, requireBinary, spawnPeer, until, waitFor, withTimeout, type Peer } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
const scenario = (name: string) => join(here, 'scenarios', name);

const test = suite('sipp ↔ UserAgent on 127.0.0.1');

let ua: UserAgent;
let workdir: string;
const peers: Peer[] = [];
const sent: SipMessage[] = [];

function sipp(args: string[], limitMs = 20_000): Peer {
  const peer = spawnPeer(requireBinary('sipp'), [...args, '-i', '127.0.0.1', '-nostdin', '-timeout', `${Math.floor(limitMs / 1000) - 2}s`, '-timeout_error', '-trace_err'], limitMs, workdir);
  peers.push(peer);
  return peer;
}

async function expectSuccess(peer: Peer, what: string): Promise<void> {
  const code = await withTimeout(peer.exited, 25_000, `${what}: sipp exit`);
  assert.is(code, 0, `${what}: sipp exit code ${code}\n${peer.output().slice(-3000)}`);
}

test.before(() => {
  requireBinary('sipp');
});

test.before.each(async () => {
  workdir = mkdtempSync(join(tmpdir(), 'ferry-sipp-'));
  ua = await UserAgent.create({ host: '127.0.0.1', user: 'ferry', userAgent: 'ferry-test' });
  sent.length = 0;
  ua.on('sent', (m) => sent.push(m));
});

test.after.each(async () => {
  for (const p of peers.splice(0)) p.kill();
  await ua.close();
  rmSync(workdir, { recursive: true, force: true });
});

test('two offerless INVITEs declined with 603 (checked by sipp), then an offerless INVITE accepted: 200 with offer, ACK with answer', async () => {
  const calls: Call[] = [];
  ua.on('incomingCall', (call) => {
    calls.push(call);
    assert.ok(call.offerless, 'sipp sent no SDP');
    if (calls.length <= 2) {
      ua.answer(call, 180);
      ua.answer(call, 603);
    } else {
      ua.answer(call, 180);
      ua.answer(call, 200, SDP_OFFER);
    }
  });
  const uaPort = ua.udp?.local.port ?? 0;
  const decline = sipp(['-sf', scenario('uac-offerless-decline.xml'), '-p', String(await freePort()), '-m', '2', '-l', '1', `127.0.0.1:${uaPort}`]);
  await expectSuccess(decline, 'decline scenario');
  assert.is(calls.length, 2);
  for (const c of calls) {
    assert.is(c.state, 'terminated');
    assert.equal(c.termination, { by: 'local', code: 603, reason: 'declined' });
  }
  // The ACK for each 603 matched its transaction (same branch): no 603 is retransmitted (Timer G = 500 ms).
  await new Promise((r) => setTimeout(r, 800));
  const declines = sent.filter((m) => m.kind === 'response' && m.status === 603);
  assert.is(declines.length, 2, 'each 603 sent once, then ACKed');
  assert.is(ua.transactions.serverCount, 2, 'both INVITE transactions wait in Confirmed (Timer I)');

  const accept = sipp(['-sf', scenario('uac-offerless-accept.xml'), '-p', String(await freePort()), '-m', '1', `127.0.0.1:${uaPort}`]);
  const third = await withTimeout(new Promise<Call>((resolve) => ua.once('incomingCall', resolve)), 10_000, 'third INVITE');
  const [ack, answer] = await waitFor(third, 'confirmed', 10_000);
  assert.is(ack.method, 'ACK');
  assert.match(answer ?? '', /s=sipp-answer/);
  assert.is(third.remoteSdp, answer);
  const ok = sent.find((m) => m.kind === 'response' && m.status === 200 && m.headers.get('CSeq') === '1 INVITE');
  assert.is(ok?.body.toString(), SDP_OFFER, 'the 200 carried our offer');
  await waitFor(third, 'terminated', 10_000);
  assert.equal(third.termination, { by: 'remote', code: 200, reason: 'BYE' });
  await expectSuccess(accept, 'accept scenario');
});

test('the UserAgent calls sipp\'s built-in UAS: 180, 200 with SDP, ACK, BYE', async () => {
  const port = await freePort();
  const uas = sipp(['-sn', 'uas', '-p', String(port), '-m', '1']);
  // sipp needs a moment to bind; retry the INVITE until it is up (bounded).
  let call: Call | undefined;
  for (let attempt = 0; attempt < 20 && !call; attempt++) {
    await new Promise((r) => setTimeout(r, 150));
    const c = ua.invite(`sip:service@127.0.0.1:${port}`, SDP_OFFER);
    const outcome = await Promise.race([
      waitFor(c, 'accepted', 8000).then(() => 'accepted' as const),
      waitFor(c, 'failed', 8000).then(() => 'failed' as const),
    ]).catch(() => 'timeout' as const);
    if (outcome === 'accepted') call = c;
  }
  assert.ok(call, `call to sipp accepted\n${uas.output().slice(-2000)}`);
  assert.match(call!.remoteSdp ?? '', /m=audio/);
  const ringing = sent.length; // (sanity: something was sent)
  assert.ok(ringing > 0);
  ua.bye(call!);
  await until(() => sent.some((m) => m.kind === 'request' && m.method === 'BYE'), 2000, 'BYE sent');
  await expectSuccess(uas, 'uas scenario');
});

test.run();
