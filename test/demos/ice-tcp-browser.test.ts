// ICE-TCP with Chromium: Chrome with its WebRTC UDP disabled (`--webrtc-ip-handling-policy=
// disable_non_proxied_udp`, as a network that blocks UDP leaves it) runs the EchoTest demo page
// against ferry with media.ice_tcp on; it connects over TCP and decodes the echoed video.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Browser } from 'playwright-core';

import { startFerry, type TestFerry } from '../helpers/ferry.js';
import { launchChromium, pageErrors, pollUntil } from '../helpers/browser.js';

let gw: TestFerry;
let browser: Browser;
test.before(async () => {
  gw = await startFerry({ log: { level: 'warn' }, media: { ice_tcp: true } });
  browser = await launchChromium(['--webrtc-ip-handling-policy=disable_non_proxied_udp', '--force-webrtc-ip-handling-policy']);
});
test.after(async () => {
  await browser?.close();
  await gw?.stop();
});

test('Chrome without UDP reaches ferry over ICE-TCP and decodes the EchoTest video', async () => {
  const page = await browser.newPage();
  const errors = pageErrors(page);
  await page.goto(`${gw.origin}${gw.config.demos.path}/echotest.html?autostart=1&transport=ws`);
  const read = () =>
    page.evaluate(async () => {
      const pc: any = (globalThis as any).ferryEchoTest?.handle?.webrtcStuff?.pc;
      const out = { frames: 0, protocol: '', state: pc?.connectionState ?? 'none' };
      if (!pc) return out;
      const stats = await pc.getStats();
      let pair: any = null;
      stats.forEach((s: any) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') out.frames += s.framesDecoded ?? 0;
        if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
      });
      if (pair) stats.forEach((s: any) => { if (s.id === pair.localCandidateId) out.protocol = s.protocol; });
      return out;
    });
  const seen = await pollUntil(read, (v) => v.frames > 10, 40_000);
  assert.ok(seen.frames > 10, `decodes the echoed video: ${JSON.stringify(seen)}; ${errors.join(' | ')}`);
  assert.is(seen.protocol, 'tcp', 'over a TCP candidate pair');
  const tcp = gw.ferry.engine.stats().workers.reduce((n, w) => n + w.tcpConnections, 0);
  assert.ok(tcp >= 1, `ferry holds the TCP connection (${tcp})`);
  await page.close();
});

test.run();
