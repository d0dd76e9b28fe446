/**
 * What the SIP plugin's churn suites share: a ferry with the SIP plugin, a
 * SIP peer (ferry's own UserAgent) that answers each call ferry makes as the
 * test said for its Call-ID, an RTP sink the SDPs point at, and the
 * WebSockets the workers open, all closed by `close()`.
 */
import * as assert from 'uvu/assert';

import type { Call } from '../../src/sip/Call.js';
import type { SipPluginConfig } from '../../src/plugins/sip/SipPlugin.js';
import { UserAgent } from '../../src/sip/UserAgent.js';
import { mediaRange } from '../helpers/ferry.js';
import { JanusWs, type Json } from '../helpers/http.js';
import { rawUdp, waitFor } from '../sip/helpers.js';
import { startSipFerry, type SipClient, type SipFerry } from './helpers.js';

/** How the peer answers one call ferry makes. */
export interface PeerBehaviour {
  answer: (call: Call) => void;
  call?: Call;
  arrived?: () => void;
}

export interface ChurnRig {
  s: SipFerry;
  peer: UserAgent;
  /** The peer's SIP port. */
  peerPort: number;
  /** The RTP port the peer's SDPs name: it absorbs whatever arrives. */
  sinkPort: number;
  /** By the Call-ID the client chose; a call with none is refused 404. */
  behaviours: Map<string, PeerBehaviour>;
  /** A new WebSocket to the ferry, closed with the rig. */
  connect(): Promise<JanusWs>;
  /** The peer's SDP (PCMU) pointing at the sink, plain RTP or SDES-SRTP. */
  peerSdp(proto?: string, crypto?: string[]): string;
  close(): Promise<void>;
}

export async function startChurnRig(sipConfig: SipPluginConfig = {}): Promise<ChurnRig> {
  const s = await startSipFerry(sipConfig, { media: { ...mediaRange(300) } });
  const peer = await UserAgent.create({ host: '127.0.0.1', user: 'peer' });
  const sink = await rawUdp();
  const sockets: JanusWs[] = [];
  const behaviours = new Map<string, PeerBehaviour>();
  peer.on('incomingCall', (call) => {
    const b = behaviours.get(call.callId);
    if (!b) return peer.answer(call, 404);
    b.call = call;
    b.answer(call);
    b.arrived?.();
  });
  return {
    s,
    peer,
    peerPort: peer.udp!.local.port,
    sinkPort: sink.port,
    behaviours,
    connect: async () => {
      const ws = await JanusWs.connect(s.f.wsUrl);
      sockets.push(ws);
      return ws;
    },
    peerSdp: (proto = 'RTP/AVP', crypto = []) =>
      ['v=0', 'o=peer 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', `m=audio ${sink.port} ${proto} 0`, 'a=rtpmap:0 PCMU/8000', ...crypto.map((c) => `a=crypto:${c}`), 'a=sendrecv', ''].join('\r\n'),
    close: async () => {
      for (const ws of sockets) await ws.close().catch(() => undefined);
      await s.f.stop();
      await peer.close();
      sink.close();
    },
  };
}

/** The plugin event's `result`. */
export const resultOf = (e: Json) => e['plugindata']['data']['result'] as Json;

/** The client hangs up a call the peer has not answered: the client's hangup is 487, and so is what the peer saw (CANCEL). */
export async function hangUpUnanswered(client: SipClient, call: Call): Promise<void> {
  const ended = waitFor(call, 'terminated', 5000);
  await client.send({ request: 'hangup' });
  assert.is(resultOf(await client.event('hangup'))['code'], 487);
  assert.is((await ended)[0].code, 487, 'the SIP peer saw the CANCEL');
}

/** How many calls a churn suite makes, over how many concurrent workers (FERRY_CHURN_CALLS, FERRY_CHURN_WORKERS). */
export const CHURN_CALLS = Number(process.env.FERRY_CHURN_CALLS ?? 1000);
export const CHURN_WORKERS = Number(process.env.FERRY_CHURN_WORKERS ?? 10);
