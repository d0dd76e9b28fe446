// Bad input on a live data-channel PeerConnection: garbage inside valid DTLS
// records (not SCTP), malformed DCEP, messages on streams nobody opened, and a
// protocol violation. Each is a counted drop or the end of that one association;
// ferry, the PeerConnection and every other client carry on.
import { randomBytes } from 'node:crypto';

import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { ferryStatus, startFerry, waitUntilIdle, type TestFerry } from '../helpers/ferry.js';
import { closePeer } from '../helpers/werift.js';
import { attach, channelOpen, collect, offerAndConnect, until, type DataPeer } from './helpers.js';

let f: TestFerry;

test.before(async () => {
  f = await startFerry();
});

test.after(async () => {
  await f.stop();
});

/** werift's SCTP association and DTLS transport under a peer's data channel (to send what a browser never would). */
function internals(peer: DataPeer): { sctp: any; dtls: any } {
  const transport = (peer.pc as any).sctpTransport;
  return { sctp: transport.sctp, dtls: transport.dtlsTransport };
}

async function echoing(): Promise<{ peer: DataPeer; echo: (text: string) => Promise<void> }> {
  const peer = await attach(f, 'janus.plugin.echotest');
  const dc = peer.pc.createDataChannel('JanusDataChannel');
  const got = collect(dc);
  await offerAndConnect(peer, { audio: true, video: true });
  await channelOpen(dc);
  return {
    peer,
    async echo(text) {
      const before = got.length;
      dc.send(text);
      await until(() => got.length > before, 5000, () => `no echo of ${text}`);
      assert.is(got.at(-1), text);
    },
  };
}

test('garbage SCTP in valid DTLS records, malformed DCEP and unknown streams are counted drops; the channel keeps working', async () => {
  const { peer, echo } = await echoing();
  try {
    await echo('before');
    const { sctp, dtls } = internals(peer);
    const start = (await ferryStatus(f))['data_channels'];
    for (let i = 0; i < 200; i++) await dtls.sendData(randomBytes(1 + (i % 300)));
    // DCEP that is not DCEP, and an OPEN on a stream already in use.
    await sctp.send(200, 50, Buffer.from([0x03, 0, 0]));
    await sctp.send(202, 50, Buffer.from([0x07]));
    await sctp.send(204, 50, Buffer.from([0x02, 1]));
    await sctp.send(1, 50, Buffer.from([0x03, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0x41]));
    // Data on a stream no channel was opened on, and a PPID data channels do not use.
    await sctp.send(206, 51, Buffer.from('nobody opened this'));
    await sctp.send(1, 99, Buffer.from('odd ppid'));
    await echo('after');
    const end = (await ferryStatus(f))['data_channels'];
    assert.ok(end.sctp_drops - start.sctp_drops >= 200, `sctp drops ${end.sctp_drops - start.sctp_drops}`);
    assert.ok(end.dcep_drops - start.dcep_drops >= 4, `dcep drops ${end.dcep_drops - start.dcep_drops}`);
    assert.ok(end.unknown_stream_drops - start.unknown_stream_drops >= 2, `unknown stream drops ${end.unknown_stream_drops - start.unknown_stream_drops}`);
    assert.is(end.associations, 1);
  } finally {
    await peer.close();
    await closePeer(peer.pc);
  }
});

test('a protocol violation ends only that association (counted), not its PeerConnection nor other clients', async () => {
  const a = await echoing();
  const b = await echoing();
  try {
    const before = (await ferryStatus(f))['data_channels'];
    // RFC 4960 §6.2: a DATA chunk with no user data aborts the association.
    const { sctp } = internals(a.peer);
    // werift would never send it: the chunk is written by hand and handed to its packet writer.
    const dataChunk = Buffer.alloc(16);
    dataChunk[0] = 0; // DATA
    dataChunk[1] = 3; // B and E
    dataChunk.writeUInt16BE(16, 2); // no user data
    dataChunk.writeUInt32BE(sctp.localTsn >>> 0, 4);
    await sctp.sendChunk({ bytes: dataChunk, type: 0 });
    await until(() => f.ferry.webrtc.dataChannelStats.closed['protocol-violation'] > before.closed['protocol-violation'], 5000, () => 'no abort counted');
    const after = (await ferryStatus(f))['data_channels'];
    assert.is(after.associations, 1, 'only the other client\'s association is left');
    assert.is(after.channels, 1);
    assert.is((await ferryStatus(f))['peer_connections'], 2, 'both PeerConnections still up');
    await b.echo('still here');
  } finally {
    for (const x of [a, b]) {
      await x.peer.close();
      await closePeer(x.peer.pc);
    }
  }
  const idle = await waitUntilIdle(f);
  assert.is(idle['data_channels'].associations, 0);
  assert.is(idle['data_channels'].timers, 0);
});

test.run();
