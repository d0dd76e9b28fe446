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

import type { Call } from '../../src/sip/Call.js';
import { UserAgent } from '../../src/sip/UserAgent.js';
import { mediaRange } from '../helpers/ferry.js';
import { JanusWs } from '../helpers/http.js';
import { rawUdp, waitFor } from '../sip/helpers.js';
import { SipClient, expectChurnReleased, expectEvenPaths, startSipFerry, until, webrtcSdp, type SipFerry } from './helpers.js';

const CALLS = Number(process.env.FERRY_CHURN_CALLS ?? 1000);
const WORKERS = Number(process.env.FERRY_CHURN_WORKERS ?? 10);
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

/** The SIP peer's SDP (plain RTP, PCMU) pointing at a socket that only absorbs. */
function peerSdp(port: number): string {
  return ['v=0', 'o=peer 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', `m=audio ${port} RTP/AVP 0`, 'a=rtpmap:0 PCMU/8000', 'a=sendrecv', ''].join('\r\n');
}

const resultOf = (e: Record<string, any>) => e['plugindata']['data']['result'] as Record<string, any>;

test(`${CALLS} calls through ${PATHS.length} ending paths: call slots, port leases, PeerConnections and accounts back to zero`, async () => {
  // 64×T1 = 640 ms: Timer B ends the unanswered calls quickly.
  const s: SipFerry = await startSipFerry({ sip_timer_t1x64: 640 }, { media: { ...mediaRange(300) } });
  const peer = await UserAgent.create({ host: '127.0.0.1', user: 'peer' });
  const sink = await rawUdp(); // RTP destination in SDPs: absorbs whatever arrives
  const dead = await rawUdp(); // a SIP "peer" that never answers
  const sockets: JanusWs[] = [];
  const counts = new Map<string, number>();
  const behaviours = new Map<string, { mode: 'answer' | 'ring'; call?: Call; arrived?: () => void }>();
  peer.on('incomingCall', (call) => {
    const b = behaviours.get(call.callId);
    if (!b) return peer.answer(call, 404);
    b.call = call;
    peer.answer(call, 180);
    if (b.mode === 'answer') peer.answer(call, 200, peerSdp(sink.port));
    b.arrived?.();
  });
  const peerPort = peer.udp!.local.port;
  try {
    const worker = async (w: number) => {
      const ws = await JanusWs.connect(s.f.wsUrl);
      sockets.push(ws);
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
            const call = peer.invite(target, peerSdp(sink.port));
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
            peer.ack(call, peerSdp(sink.port));
            const accepted = await client.event('accepted');
            assert.is(accepted['jsep']?.['type'], 'answer');
            await client.send({ request: 'hangup' });
            assert.is(resultOf(await client.event('hangup'))['code'], 200);
            await until(() => call.terminated, 5000, 'the SIP peer\'s call ended');
            break;
          }
          case 3: {
            const call = peer.invite(target, peerSdp(sink.port));
            const ringing = waitFor(call, 'provisional', 5000, (res) => res.status === 180);
            await client.event('incomingcall');
            await ringing;
            peer.cancel(call);
            assert.is(resultOf(await client.event('hangup'))['code'], 487);
            await until(() => call.terminated, 5000, 'the SIP peer\'s call ended');
            break;
          }
          case 4: {
            const call = peer.invite(target, peerSdp(sink.port));
            await client.event('incomingcall');
            const failed = waitFor(call, 'failed', 5000);
            await client.send({ request: 'decline' });
            assert.is(resultOf(await client.event('hangup'))['code'], 603);
            assert.is((await failed)[0], 603);
            break;
          }
          case 5:
          case 6: {
            const b: { mode: 'answer' | 'ring'; call?: Call; arrived?: () => void } = { mode: path === 5 ? 'answer' : 'ring' };
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
              const ended = waitFor(b.call!, 'terminated', 5000);
              await client.send({ request: 'hangup' });
              assert.is(resultOf(await client.event('hangup'))['code'], 487);
              assert.is((await ended)[0].code, 487, 'the SIP peer saw the CANCEL');
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
            const call = peer.invite(target, peerSdp(sink.port));
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
    for (const ws of sockets) await ws.close().catch(() => undefined);
    await s.f.stop();
    await peer.close();
    sink.close();
    dead.close();
  }
});

test.run();
