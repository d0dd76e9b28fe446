/**
 * Churn: 10^3 calls set up and ended through every path — BYE from either
 * side, CANCEL either way, decline, no answer (Timer B), offerless accept,
 * session destroy and detach mid-call — between plugin handles (Janus API
 * over WebSocket, browser-like SDP without a browser behind it) and a second
 * in-process SIP UserAgent. Afterwards no call slot is busy, no RTP leg or
 * PeerConnection port is leased, no PeerConnection is open and, once the
 * handles are gone, no account (UserAgent, sockets) remains.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { rawUdp, waitFor } from '../sip/helpers.js';
import { CHURN_CALLS, CHURN_WORKERS, hangUpUnanswered, resultOf, startChurnRig, type PeerBehaviour } from './churnRig.js';
import { SipClient, expectChurnReleased, expectEvenPaths, until, webrtcSdp } from './helpers.js';

const CALLS = CHURN_CALLS;
const WORKERS = CHURN_WORKERS;
const PATHS = [
  'incoming, accepted, BYE from the SIP peer',
  'incoming, accepted, hangup by the client (BYE from ferry)',
  'incoming offerless, accepted with an offer, answer in the ACK, hangup by the client',
  'incoming, CANCEL from the SIP peer',
  'incoming, declined (603)',
  'outgoing, answered, BYE from the SIP peer',
  'outgoing, ringing, hangup by the client (CANCEL)',
  'outgoing, no answer (Timer B, 408)',
  'incoming, accepted, session destroyed',
  'incoming, ringing, handle detached (480)',
] as const;


test(`${CALLS} calls through ${PATHS.length} ending paths: call slots, port leases, PeerConnections and accounts back to zero`, async () => {
  // 64×T1 = 640 ms: Timer B ends the unanswered calls quickly.
  const rig = await startChurnRig({ sip_timer_t1x64: 640 });
  const { s, peer, peerPort, behaviours, peerSdp } = rig;
  const dead = await rawUdp(); // a SIP "peer" that never answers
  const counts = new Map<string, number>();
  try {
    const worker = async (w: number) => {
      const ws = await rig.connect();
      const fresh = async () => {
        const c = await SipClient.open(s.f, ws);
        await c.send({ request: 'register', type: 'guest', username: `sip:w${w}@127.0.0.1` });
        await c.event('registered');
        return { client: c, target: `sip:w${w}@127.0.0.1:${(await c.info())['sip_udp_port']}` };
      };
      let { client, target } = await fresh();
      for (let i = w; i < CALLS; i += WORKERS) {
        // Each worker cycles through every path (worker w starts at path w).
        const path = (w + Math.floor(i / WORKERS)) % PATHS.length;
        const tag = `churn-${i}`;
        switch (path) {
          case 0:
          case 1:
          case 8: {
            const call = peer.invite(target, peerSdp());
            const inc = await client.event('incomingcall');
            assert.is(inc['jsep']?.['type'], 'offer');
            const answered = waitFor(call, 'accepted', 5000);
            await client.send({ request: 'accept' }, { type: 'answer', sdp: webrtcSdp('answer', { pt: 0 }) });
            await client.event('accepted');
            await answered;
            if (path === 0) {
              peer.bye(call);
              assert.is(resultOf(await client.event('hangup'))['code'], 200);
            } else if (path === 1) {
              await client.send({ request: 'hangup' });
              await client.event('hangingup');
              assert.is(resultOf(await client.event('hangup'))['code'], 200);
              await until(() => call.terminated, 5000, 'the SIP peer\'s call ended');
            } else {
              const ended = waitFor(call, 'terminated', 5000);
              await client.destroy();
              await ended;
              ({ client, target } = await fresh());
            }
            break;
          }
          case 2: {
            const call = peer.invite(target, null);
            const inc = await client.event('incomingcall');
            assert.is(inc['jsep'], undefined);
            const okWithOffer = waitFor(call, 'accepted', 5000);
            await client.send({ request: 'accept' }, { type: 'offer', sdp: webrtcSdp('offer') });
            await client.event('accepting');
            const [, offer] = await okWithOffer;
            assert.match(offer ?? '', /m=audio \d+ RTP\/AVP/);
            peer.ack(call, peerSdp());
            const accepted = await client.event('accepted');
            assert.is(accepted['jsep']?.['type'], 'answer');
            await client.send({ request: 'hangup' });
            assert.is(resultOf(await client.event('hangup'))['code'], 200);
            await until(() => call.terminated, 5000, 'the SIP peer\'s call ended');
            break;
          }
          case 3: {
            const call = peer.invite(target, peerSdp());
            const ringing = waitFor(call, 'provisional', 5000, (res) => res.status === 180);
            await client.event('incomingcall');
            await ringing;
            peer.cancel(call);
            assert.is(resultOf(await client.event('hangup'))['code'], 487);
            await until(() => call.terminated, 5000, 'the SIP peer\'s call ended');
            break;
          }
          case 4: {
            const call = peer.invite(target, peerSdp());
            await client.event('incomingcall');
            const failed = waitFor(call, 'failed', 5000);
            await client.send({ request: 'decline' });
            assert.is(resultOf(await client.event('hangup'))['code'], 603);
            assert.is((await failed)[0], 603);
            break;
          }
          case 5:
          case 6: {
            const b: PeerBehaviour = {
              answer: (call) => {
                peer.answer(call, 180);
                if (path === 5) peer.answer(call, 200, peerSdp());
              },
            };
            const arrived = new Promise<void>((resolve) => { b.arrived = resolve; });
            behaviours.set(tag, b);
            await client.send({ request: 'call', uri: `sip:peer@127.0.0.1:${peerPort}`, call_id: tag }, { type: 'offer', sdp: webrtcSdp('offer') });
            await client.event('calling');
            await arrived;
            if (path === 5) {
              const accepted = await client.event('accepted');
              assert.is(accepted['jsep']?.['type'], 'answer');
              await until(() => b.call!.state === 'established', 5000, 'the SIP peer got the ACK');
              peer.bye(b.call!);
              assert.is(resultOf(await client.event('hangup'))['code'], 200);
            } else {
              await client.event('ringing');
              await hangUpUnanswered(client, b.call!);
            }
            behaviours.delete(tag);
            break;
          }
          case 7: {
            await client.send({ request: 'call', uri: `sip:nobody@127.0.0.1:${dead.port}` }, { type: 'offer', sdp: webrtcSdp('offer') });
            await client.event('calling');
            assert.is(resultOf(await client.event('hangup', 5000))['code'], 408);
            break;
          }
          case 9: {
            const call = peer.invite(target, peerSdp());
            await client.event('incomingcall');
            const failed = waitFor(call, 'failed', 5000);
            await ws.request({ janus: 'detach', session_id: client.session, handle_id: client.handle });
            assert.is((await failed)[0], 480, 'the caller got 480 when the handle went away');
            await client.destroy();
            ({ client, target } = await fresh());
            break;
          }
        }
        counts.set(PATHS[path]!, (counts.get(PATHS[path]!) ?? 0) + 1);
        // Between calls of one handle the slot is idle again, whatever ended the previous call.
        if (path !== 8 && path !== 9) assert.is((await client.info())['slot'], 'idle');
      }
      await client.destroy();
    };
    await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));

    expectEvenPaths(counts, PATHS, CALLS);
    await expectChurnReleased(s);
  } finally {
    await rig.close();
    dead.close();
  }
});

test.run();
