// ICE-TCP (media.ice_tcp, RFC 6544): ferry offers a passive TCP candidate on each
// PeerConnection's port; a werift peer that may only use TCP pairs (as a client on a network
// that blocks UDP) connects over it and gets its EchoTest audio back: STUN, DTLS and SRTP all
// ride the one TCP connection (RFC 4571 framing).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RTCPeerConnection } from 'werift';

import { JanusWs } from '../helpers/http.js';
import { startFerry } from '../helpers/ferry.js';
import { echoThrough } from '../helpers/echo.js';
import { closePeer } from '../helpers/werift.js';

test('a peer without UDP reaches ferry over ICE-TCP and its EchoTest audio comes back', async () => {
  const f = await startFerry({ media: { ice_tcp: true } });
  const ws = await JanusWs.connect(f.wsUrl);
  const peers: RTCPeerConnection[] = [];
  try {
    const session = (await ws.request({ janus: 'create' }))['data'].id as number;
    const echoed = await echoThrough(ws, session, '127.0.0.1', peers, {
      iceUseTcp: true,
      // Only TCP pairs: the UDP candidates exist but are never checked.
      iceFilterCandidatePair: (pair) => pair.remoteCandidate.transport.toLowerCase() === 'tcp',
    });
    assert.is(echoed, 20, 'every packet echoed over TCP');
    const answer = peers[0]!.remoteDescription!.sdp;
    assert.match(answer, / tcp \d+ 127\.0\.0\.1 \d+ typ host tcptype passive/, 'ferry offers a passive TCP candidate');
    const workers = f.ferry.engine.stats().workers;
    assert.is(workers.reduce((n, w) => n + w.tcpConnections, 0), 1, 'one TCP connection carries it');
  } finally {
    for (const pc of peers) await closePeer(pc).catch(() => undefined);
    await ws.close();
    await f.stop();
  }
});

test.run();
