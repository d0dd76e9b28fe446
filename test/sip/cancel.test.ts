/** RFC 3261 §9.1 as InviteClient's CANCEL_TABLE: a CANCEL waits for a provisional response and is sent once. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Call } from '../../src/sip/Call.js';
import { CANCEL_TABLE, type CancelInput, type CancelState } from '../../src/sip/InviteClient.js';
import { topVia } from '../../src/sip/SipMessage.js';
import { UserAgent } from '../../src/sip/UserAgent.js';
import { SDP_OFFER, until, waitFor } from './helpers.js';

const test = suite('CANCEL');

let alice: UserAgent;
let bob: UserAgent;
const bobUri = () => `sip:bob@127.0.0.1:${bob.udp?.local.port}`;

test.before.each(async () => {
  alice = await UserAgent.create({ host: '127.0.0.1', user: 'alice' });
  bob = await UserAgent.create({ host: '127.0.0.1', user: 'bob' });
});

test.after.each(async () => {
  await alice.close();
  await bob.close();
});

test('CANCEL_TABLE: every sequence of inputs sends one CANCEL once it has both a cancel and a provisional, else none', () => {
  const inputs: CancelInput[] = ['provisional', 'cancel'];
  let sequences: CancelInput[][] = [[]];
  for (let length = 1; length <= 4; length++) {
    sequences = sequences.flatMap((s) => inputs.map((i) => [...s, i]));
    for (const sequence of sequences) {
      let state: CancelState = 'unanswered';
      let sent = 0;
      for (const input of sequence) {
        const row: { to: CancelState; sendCancel: boolean } | undefined = CANCEL_TABLE[state][input];
        if (!row) continue;
        state = row.to;
        if (row.sendCancel) sent++;
      }
      const expected = sequence.includes('cancel') && sequence.includes('provisional') ? 1 : 0;
      assert.is(sent, expected, sequence.join(' → '));
    }
  }
});

test('a CANCEL asked before any response goes once the 180 arrives, with the INVITE\'s branch; the call ends 487', async () => {
  let bobCall: Call | undefined;
  bob.on('incomingCall', (c) => {
    bobCall = c;
    bob.answer(c, 180);
  });
  const branches: string[] = [];
  alice.on('sent', (msg) => {
    if (msg.kind === 'request') branches.push(`${msg.method} ${topVia(msg)?.params.get('branch') ?? ''}`);
  });
  const call = alice.invite(bobUri(), SDP_OFFER);
  alice.cancel(call); // before the INVITE has even left
  const [code] = await waitFor(call, 'failed');
  assert.is(code, 487);
  await until(() => bobCall?.state === 'terminated', 3000, 'callee terminated');
  assert.equal(bobCall?.termination, { by: 'remote', code: 487, reason: 'Request Terminated' });
  const invite = branches.find((b) => b.startsWith('INVITE '));
  const cancels = branches.filter((b) => b.startsWith('CANCEL '));
  assert.ok(invite !== undefined && cancels.length > 0, branches.join(', '));
  for (const c of cancels) assert.is(c.slice('CANCEL '.length), invite!.slice('INVITE '.length), 'CANCEL carries the INVITE\'s branch (§9.1)');
});

test.run();
