/**
 * What the negotiation tests share: a Janus handle over a WebSocket, a werift peer's offer, and
 * a ferry whose werift peers are always closed and which is always stopped.
 */
import { MediaStreamTrack, type RTCPeerConnection } from 'werift';

import type { ConfigOverrides } from '../../src/config/Config.js';
import { startFerry, type TestFerry } from '../helpers/ferry.js';
import { JanusWs } from '../helpers/http.js';
import { closePeer, loopbackPeer } from '../helpers/werift.js';

/** One plugin handle in its own session, over its own WebSocket. */
export interface Client {
  ws: JanusWs;
  session: number;
  handle: number;
}

export async function client(f: TestFerry, plugin = 'janus.plugin.echotest'): Promise<Client> {
  const ws = await JanusWs.connect(f.wsUrl);
  const session = (await ws.request({ janus: 'create' }))['data'].id as number;
  const handle = (await ws.request({ janus: 'attach', session_id: session, plugin }))['data'].id as number;
  return { ws, session, handle };
}

/** The offer of a werift peer with an audio and a video transceiver in `direction`. */
export async function offerFrom(pc: RTCPeerConnection, direction: 'sendrecv' | 'sendonly' = 'sendrecv'): Promise<string> {
  pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction });
  pc.addTransceiver(new MediaStreamTrack({ kind: 'video' }), { direction });
  await pc.setLocalDescription(await pc.createOffer());
  return pc.localDescription!.sdp;
}

/**
 * Runs `body` against a started ferry (with `overrides`) and a list for the werift peers it
 * opens; whatever happens, closes them and stops the ferry.
 */
export async function withFerry(overrides: ConfigOverrides, body: (f: TestFerry, peers: RTCPeerConnection[]) => Promise<void>): Promise<void> {
  const f = await startFerry(overrides);
  const peers: RTCPeerConnection[] = [];
  try {
    await body(f, peers);
  } finally {
    for (const p of peers) await closePeer(p);
    await f.stop();
  }
}

/** A loopback werift peer, kept in `peers` to be closed. */
export function peerIn(peers: RTCPeerConnection[]): RTCPeerConnection {
  const pc = loopbackPeer();
  peers.push(pc);
  return pc;
}
