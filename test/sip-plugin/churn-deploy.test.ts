/**
 * Churn through the endings issue 16 added: 10^3 calls, each worker a master
 * handle and a helper (Janus API over WebSocket, browser-like SDP without a
 * browser) against an in-process SIP peer (ferry's own stack):
 * - SDES-SRTP negotiation failure: `call` with sdes_mandatory answered in the
 *   clear (hangup 488, BYE), and an incoming RTP/SAVP offer with no usable
 *   crypto line (488 before any incomingcall);
 * - early media then cancel: a 183 with SDP gives `progress`, the client hangs
 *   up, ferry CANCELs (487);
 * - a completed blind transfer: the peer REFERs the master's call, the helper
 *   follows with `call{refer_id}`, the peer gets NOTIFY 100 and 200 and hangs
 *   up the first call, the helper hangs up the second.
 * Afterwards no call slot is busy, no referral is kept, no RTP leg, port lease,
 * PeerConnection or native endpoint is left, and no account once the handles go.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import type { InDialogRequestEvent } from '../../src/sip/Call.js';
import { waitFor } from '../sip/helpers.js';
import { CHURN_CALLS, CHURN_WORKERS, hangUpUnanswered, resultOf, startChurnRig, type PeerBehaviour } from './churnRig.js';
import { SipClient, expectChurnReleased, expectEvenPaths, until, webrtcSdp } from './helpers.js';

const CALLS = CHURN_CALLS;
const WORKERS = CHURN_WORKERS;
const PATHS = [
  'outgoing, sdes_mandatory answered in the clear (488, BYE)',
  'incoming RTP/SAVP offer without a usable crypto line (488)',
  'outgoing, 183 with SDP (progress), hangup by the client (CANCEL, 487)',
  'incoming, REFER, call{refer_id} on the helper answered, NOTIFY 200, both calls hung up',
] as const;


test(`${CALLS} calls through ${PATHS.length} new ending paths: slots, referrals, port leases, PeerConnections and accounts back to zero`, async () => {
  const rig = await startChurnRig();
  const { s, peer, peerPort, behaviours, peerSdp } = rig;
  const counts = new Map<string, number>();
  const badCrypto = [`1 AES_CM_128_HMAC_SHA1_80 inline:${Buffer.alloc(20, 1).toString('base64')}`];
  try {
    const worker = async (w: number) => {
      const ws = await rig.connect();
      const master = await SipClient.open(s.f, ws);
      await master.send({ request: 'register', type: 'guest', username: `sip:w${w}@127.0.0.1` });
      const masterId = resultOf(await master.event('registered'))['master_id'];
      const helper = await SipClient.open(s.f, ws);
      await helper.send({ request: 'register', type: 'helper', username: `sip:w${w}@127.0.0.1`, master_id: masterId });
      await helper.event('registered');
      const target = `sip:w${w}@127.0.0.1:${(await master.info())['sip_udp_port']}`;
      for (let i = w; i < CALLS; i += WORKERS) {
        const path = (w + Math.floor(i / WORKERS)) % PATHS.length;
        const tag = `deploy-${i}`;
        switch (path) {
          case 0: {
            const b: PeerBehaviour = { answer: (call) => peer.answer(call, 200, peerSdp()) };
            behaviours.set(tag, b);
            await master.send({ request: 'call', uri: `sip:peer@127.0.0.1:${peerPort}`, call_id: tag, srtp: 'sdes_mandatory' }, { type: 'offer', sdp: webrtcSdp('offer') });
            const hangup = resultOf(await master.event('hangup'));
            assert.is(hangup['code'], 488);
            await until(() => b.call?.terminated === true, 5000, 'the peer got the BYE');
            behaviours.delete(tag);
            break;
          }
          case 1: {
            const call = peer.invite(target, peerSdp('RTP/SAVP', badCrypto));
            const [code] = await waitFor(call, 'failed', 5000);
            assert.is(code, 488);
            break;
          }
          case 2: {
            const b: PeerBehaviour = { answer: (call) => peer.answer(call, 183, peerSdp()) };
            behaviours.set(tag, b);
            await master.send({ request: 'call', uri: `sip:peer@127.0.0.1:${peerPort}`, call_id: tag }, { type: 'offer', sdp: webrtcSdp('offer') });
            const progress = await master.event('progress');
            assert.is(progress['jsep']?.['type'], 'answer');
            await hangUpUnanswered(master, b.call!);
            behaviours.delete(tag);
            break;
          }
          case 3: {
            const first = peer.invite(target, peerSdp());
            await master.event('incomingcall');
            const answered = waitFor(first, 'accepted', 5000);
            await master.send({ request: 'accept' }, { type: 'answer', sdp: webrtcSdp('answer', { pt: 0 }) });
            await master.event('accepted');
            await answered;
            const notifies: InDialogRequestEvent[] = [];
            first.on('notify', (ev) => notifies.push(ev));
            assert.is((await peer.refer(first, `<sip:peer@127.0.0.1:${peerPort}>`)).code, 202);
            const transfer = resultOf(await master.event('transfer'));
            const b: PeerBehaviour = { answer: (call) => peer.answer(call, 200, peerSdp()) };
            behaviours.set(tag, b);
            await helper.send({ request: 'call', uri: transfer['refer_to'], refer_id: transfer['refer_id'], call_id: tag }, { type: 'offer', sdp: webrtcSdp('offer') });
            await helper.event('accepted');
            await until(() => notifies.length >= 2, 5000, 'NOTIFY 100 and 200');
            assert.match(notifies[1]!.body ?? '', /^SIP\/2\.0 200/);
            peer.bye(first);
            assert.is(resultOf(await master.event('hangup'))['code'], 200);
            const second = waitFor(b.call!, 'terminated', 5000);
            await helper.send({ request: 'hangup' });
            assert.is(resultOf(await helper.event('hangup'))['code'], 200);
            await second;
            behaviours.delete(tag);
            break;
          }
        }
        counts.set(PATHS[path]!, (counts.get(PATHS[path]!) ?? 0) + 1);
        assert.is((await master.info())['slot'], 'idle');
        assert.is((await helper.info())['slot'], 'idle');
      }
      await helper.destroy();
      await master.destroy();
    };
    await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));

    expectEvenPaths(counts, PATHS, CALLS);
    assert.is(s.sip.stats().sdpRefused, (CALLS / PATHS.length) * 2, 'every refused SDP counted');
    assert.is(s.sip.stats().referrals, 0, 'no referral kept');
    await expectChurnReleased(s);
  } finally {
    await rig.close();
  }
});

test.run();
