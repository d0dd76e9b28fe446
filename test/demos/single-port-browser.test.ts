// Single-port mode with Chromium: two VideoRoom pages and one EchoTest page (janus.js) all
// negotiate through the shared UDP ports (one per media thread) and decode video; the kernel's
// socket table shows exactly one socket on each shared port and none in the rtp range.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Page } from 'playwright-core';

import { pageErrors, pollUntil, saveScreenshot, useFerryAndChromium } from '../helpers/browser.js';
import { freeUdpPorts, udpSocketsByPort } from '../helpers/udp.js';

const THREADS = Number(process.env['FERRY_MEDIA_WORKERS'] ?? 1);


const PORTS = await freeUdpPorts(THREADS);
const env = useFerryAndChromium(test, { media: { single_port: PORTS.join(','), workers: THREADS } });

/** Video frames decoded by a page's PeerConnection (`which`: the page object holding it), and the remote port of its selected pair. */
function inbound(page: Page, which: string): Promise<{ frames: number; remotePort: number | null }> {
  return page.evaluate(async (path) => {
    let pc: any = globalThis as any;
    for (const key of path.split('.')) pc = pc?.[key];
    if (!pc) return { frames: 0, remotePort: null };
    let frames = 0;
    let pair: any = null;
    const remotes = new Map<string, any>();
    (await pc.getStats()).forEach((s: any) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded ?? 0;
      if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
      if (s.type === 'remote-candidate') remotes.set(s.id, s);
    });
    return { frames, remotePort: pair ? (remotes.get(pair.remoteCandidateId)?.port ?? null) : null };
  }, which);
}

test('two VideoRoom pages and an EchoTest page share the media ports; one socket per port', async () => {
  const demos = `${env.gw.origin}${env.gw.config.demos.path}`;
  const pages: { page: Page; errors: string[] }[] = [];
  for (const url of [`${demos}/videoroom.html?room=1234&display=alice&autostart=1`, `${demos}/videoroom.html?room=1234&display=bob&autostart=1`, `${demos}/echotest.html?autostart=1&transport=ws`]) {
    const context = await env.browser.newContext({ viewport: { width: 1000, height: 700 } });
    const page = await context.newPage();
    pages.push({ page, errors: pageErrors(page) });
    await page.goto(url);
  }
  const [alice, bob, echo] = pages as [(typeof pages)[0], (typeof pages)[0], (typeof pages)[0]];
  for (const [who, path] of [[alice, 'ferryVideoRoom.subscriber.webrtcStuff.pc'], [bob, 'ferryVideoRoom.subscriber.webrtcStuff.pc'], [echo, 'ferryEchoTest.handle.webrtcStuff.pc']] as const) {
    const seen = await pollUntil(() => inbound(who.page, path), (v) => v.frames > 15 && v.remotePort !== null, 40_000);
    assert.ok(seen.frames > 15, `${path} decodes video: ${JSON.stringify(seen)}; ${who.errors.join(' | ')}`);
    assert.ok(PORTS.includes(seen.remotePort!), `${path} reaches ferry on a shared port: ${seen.remotePort} of ${PORTS}`);
  }
  // The publishers' PeerConnections too.
  for (const who of [alice, bob]) {
    const pub = await pollUntil(() => inbound(who.page, 'ferryVideoRoom.publisher.webrtcStuff.pc'), (v) => v.remotePort !== null, 20_000);
    assert.ok(PORTS.includes(pub.remotePort!), `the publisher's pair is on a shared port: ${pub.remotePort}`);
  }
  // Five PeerConnections, one socket per shared port, nothing leased from the range.
  const workers = env.gw.ferry.engine.stats().workers;
  assert.is(workers.reduce((n, w) => n + w.sharedEndpoints, 0), 5, 'five PeerConnections on the shared ports');
  for (const port of PORTS) assert.is((udpSocketsByPort({ pid: process.pid }).get(port) ?? 0), 1, `exactly one socket on port ${port}`);
  const { rtp_port_min: min, rtp_port_max: max } = env.gw.config.media;
  let inRange = 0;
  const sockets = udpSocketsByPort({ pid: process.pid });
  for (let p = min; p <= max; p++) inRange += sockets.get(p) ?? 0;
  assert.is(inRange, 0, `no socket in the rtp range ${min}-${max}`);
  assert.is(env.gw.ferry.ports.leased, 0);
  await saveScreenshot(alice.page, 'single-port-videoroom');
  for (const { page } of pages) await page.context().close();
});

test.run();
