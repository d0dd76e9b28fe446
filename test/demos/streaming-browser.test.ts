// The Streaming demo page in headless Chromium: janus.js (from the janus-gateway package) watches
// the sample mountpoint 1 while Debian's ffmpeg feeds it VP8 and Opus; Chromium decodes the video.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ferryStatus } from '../helpers/ferry.js';
import { pageErrors, pollUntil, saveScreenshot, useFerryAndChromium } from '../helpers/browser.js';
import { JanusClient, startFfmpeg, type Encoder } from '../streaming/harness.js';

const env = useFerryAndChromium(test, { streaming: { demo_mountpoint: true } });

test('Streaming page: janus.js watches mountpoint 1 fed by ffmpeg, Chromium decodes frames and receives audio', async () => {
  let encoder: Encoder | null = null;
  try {
    const api = await JanusClient.open(env.gw);
    const info = (await api.sync({ request: 'info', id: 1 }))['info'];
    const port = (type: string) => info.media.find((m: Record<string, unknown>) => m['type'] === type).port as number;
    await api.close();
    encoder = startFfmpeg({ audio: port('audio'), video: port('video') });
    const page = await env.browser.newPage({ viewport: { width: 1280, height: 760 } });
    const errors = pageErrors(page);
    await page.goto(`${env.gw.origin}${env.gw.config.demos.path}/streaming.html?autostart=1&id=1`);
    const read = () =>
      page.evaluate(async () => {
        const pc: any = (globalThis as any).ferryStreaming?.handle?.webrtcStuff?.pc;
        const out = { framesDecoded: 0, audioPackets: 0, connectionState: pc?.connectionState ?? 'none', width: 0 };
        if (!pc) return out;
        (await pc.getStats()).forEach((s: any) => {
          if (s.type !== 'inbound-rtp') return;
          if (s.kind === 'video') {
            out.framesDecoded += s.framesDecoded ?? 0;
            out.width = s.frameWidth ?? out.width;
          } else if (s.kind === 'audio') out.audioPackets += s.packetsReceived ?? 0;
        });
        return out;
      });
    const got = await pollUntil(read, (f) => f.framesDecoded > 20 && f.audioPackets > 20, 30_000);
    assert.ok(got.framesDecoded > 20, `frames decoded: ${JSON.stringify(got)}; page errors: ${errors.join(' | ')}; ffmpeg: ${encoder.stderr()}`);
    assert.ok(got.audioPackets > 20, `audio: ${JSON.stringify(got)}`);
    assert.is(got.width, 320, "ffmpeg's test pattern size");
    assert.is(got.connectionState, 'connected');
    const statuses = await page.evaluate(() => (globalThis as any).ferryStreaming.events.map((e: any) => e.result?.status).filter(Boolean));
    assert.equal(statuses.slice(0, 3), ['preparing', 'starting', 'started'], 'Janus status events in order');
    // The page shows the mountpoint's ports and an ffmpeg command for them.
    const cmd = await page.locator('#cmd').textContent();
    assert.match(String(cmd), new RegExp(`rtp://127\\.0\\.0\\.1:${port('video')}`));
    // The page's own figures (what people see) agree: an inbound video row with its rate.
    const shown = await pollUntil(
      () => page.evaluate(() => (globalThis as any).ferryStreaming.stats?.latest ?? {}) as Promise<Record<string, { kbps: number }>>,
      (latest) => Object.entries(latest).some(([k, f]) => k.startsWith('in video') && f.kbps > 50),
      8_000,
    );
    assert.ok(Object.entries(shown).some(([k, f]) => k.startsWith('in video') && f.kbps > 50), `the page shows the video rate: ${JSON.stringify(shown)}`);
    await saveScreenshot(page, 'streaming');
    const before = await ferryStatus(env.gw);
    assert.equal([before['sessions'], before['peer_connections']], [1, 1], JSON.stringify(before));
    await page.click('#stop');
    const after = await pollUntil(() => ferryStatus(env.gw), (s) => s['peer_connections'] === 0, 10_000);
    assert.is(after['peer_connections'], 0, JSON.stringify(after));
    await page.evaluate(() => new Promise<void>((resolve) => (globalThis as any).ferryStreaming.janus.destroy({ success: resolve, error: resolve })));
    await page.close();
    const idle = await pollUntil(() => ferryStatus(env.gw), (s) => s['sessions'] === 0, 10_000);
    assert.is(idle['sessions'], 0);
    assert.is(env.gw.ferry.leasedPorts(), 2, "only the mountpoint's two ingest ports");
  } finally {
    await encoder?.stop();
  }
});

test.run();
