// werift peers with data channels against a whole ferry on loopback: one
// WebSocket session and handle per peer, the client's offer answered by the
// plugin (EchoTest, VideoRoom publisher) or the plugin's offer answered by the
// client (TextRoom, VideoRoom subscriber).
import type { RTCDataChannel, RTCPeerConnection } from 'werift';

import type { TestFerry } from '../helpers/ferry.js';
import { JanusWs, type Json } from '../helpers/http.js';
import { connectionState, loopbackPeer } from '../helpers/werift.js';

export interface DataPeer {
  ws: JanusWs;
  session: number;
  handle: number;
  pc: RTCPeerConnection;
  /** Sends a plugin message (with an optional jsep) and returns the reply (ack or success). */
  message(body: Record<string, unknown>, jsep?: Json): Promise<Json>;
  close(): Promise<void>;
}

export async function attach(f: TestFerry, plugin: string, peerConfig: Record<string, unknown> = {}): Promise<DataPeer> {
  const ws = await JanusWs.connect(f.wsUrl);
  const session = (await ws.request({ janus: 'create' }))['data'].id as number;
  const handle = (await ws.request({ janus: 'attach', session_id: session, plugin }))['data'].id as number;
  // Large enough for the biggest message the tests send back and forth.
  const pc = loopbackPeer({ maxMessageSize: 4 * 1024 * 1024, ...peerConfig });
  return {
    ws,
    session,
    handle,
    pc,
    message: (body, jsep) => ws.request({ janus: 'message', session_id: session, handle_id: handle, body, ...(jsep ? { jsep } : {}) }),
    async close() {
      await pc.close().catch(() => undefined);
      // A request on a closed socket would never be answered.
      if (!ws.closed) await ws.request({ janus: 'destroy', session_id: session });
      await ws.close();
    },
  };
}

/** Offers the peer's channels (created before) to the plugin with `body`; resolves once connected. */
export async function offerAndConnect(peer: DataPeer, body: Record<string, unknown>, match: (e: Json) => boolean = (e) => e['janus'] === 'event' && e['jsep'] !== undefined): Promise<Json> {
  const offer = await peer.pc.createOffer();
  await peer.pc.setLocalDescription(offer);
  await peer.message(body, { type: 'offer', sdp: peer.pc.localDescription!.sdp });
  const event = await peer.ws.nextEvent(match, 10_000);
  await peer.pc.setRemoteDescription(event['jsep']);
  await connectionState(peer.pc, 'connected');
  return event;
}

/** Answers an offer the plugin made (carried by `event`) with `body`; resolves once connected. */
export async function answerAndConnect(peer: DataPeer, event: Json, body: Record<string, unknown>): Promise<void> {
  await peer.pc.setRemoteDescription(event['jsep']);
  const answer = await peer.pc.createAnswer();
  await peer.pc.setLocalDescription(answer);
  await peer.message(body, { type: 'answer', sdp: peer.pc.localDescription!.sdp });
  await connectionState(peer.pc, 'connected');
}

export function channelOpen(dc: RTCDataChannel, ms = 10_000): Promise<void> {
  if (dc.readyState === 'open') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`data channel ${dc.label} not open within ${ms} ms (is ${dc.readyState})`)), ms);
    dc.stateChanged.subscribe((state) => {
      if (state === 'open') {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

/** Collects what arrives on a channel. */
export function collect(dc: RTCDataChannel): (string | Buffer)[] {
  const out: (string | Buffer)[] = [];
  dc.onMessage.subscribe((m) => out.push(m));
  return out;
}

export async function until(cond: () => boolean, ms: number, what: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
