// Child process of bench/datachannel.bench.ts: a werift RTCPeerConnection that
// answers the bench's offer and echoes every data-channel message on the
// channel it came from, i.e. what ferry's EchoTest does, in werift's SCTP. Run
// as `node --import tsx bench/datachannel-echo-peer.ts` (forked); talks over
// IPC: {offer} → {answer}, {stop} → exits.
import type { RTCPeerConnection } from 'werift';

import { loopbackPeer } from '../test/helpers/werift.js';

if (!process.send) throw new Error('usage: forked by bench/datachannel.bench.ts');
const send = (msg: object) => process.send!(msg);
let pc: RTCPeerConnection | null = null;

process.on('message', (msg: { type: string; sdp?: string }) => {
  if (msg.type === 'offer' && msg.sdp) {
    void (async () => {
      pc = loopbackPeer({ maxMessageSize: 1024 * 1024 });
      pc.onDataChannel.subscribe((dc) => {
        dc.onMessage.subscribe((m) => dc.send(m));
      });
      await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp! });
      await pc.setLocalDescription(await pc.createAnswer());
      send({ type: 'answer', sdp: pc.localDescription!.sdp });
    })();
  } else if (msg.type === 'stop') {
    void (pc?.close() ?? Promise.resolve()).finally(() => {
      process.disconnect();
      process.exit(0);
    });
  }
});
send({ type: 'ready' });
