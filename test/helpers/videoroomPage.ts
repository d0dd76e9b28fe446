// The VideoRoom demo page (src/demos/public/videoroom.js, its `ferryVideoRoom` global) in
// Chromium: a page that joins a room and publishes, a room made through the Janus API, and
// what a simulcast publisher page sends on each layer.
import type { Browser, Page } from 'playwright-core';
import { pageErrors } from './browser.js';
import type { TestFerry } from './ferry.js';

/** Simulcast rids as the demo page (janus.js) names them. */
export const RIDS_LOW_TO_HIGH = ['l', 'm', 'h'] as const;

/** Opens the demo page in a context of its own; it joins `room` as `display` and publishes at once. */
export async function openVideoRoomPage(browser: Browser, gw: TestFerry, display: string, room: number, query = ''): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  const errors = pageErrors(page);
  await page.goto(`${gw.origin}${gw.config.demos.path}/videoroom.html?room=${room}&display=${display}&autostart=1${query}`);
  return { page, errors };
}

/** Creates a room through the Janus HTTP API (a VideoRoom handle of a short session). */
export async function createVideoRoom(gw: TestFerry, body: Record<string, unknown>): Promise<void> {
  const session = await gw.http.createSession();
  const handle = await gw.http.attach(session, 'janus.plugin.videoroom');
  const reply = await gw.http.post(`/${session}/${handle}`, { janus: 'message', body: { request: 'create', ...body } });
  await gw.http.post(`/${session}`, { janus: 'destroy' });
  if (reply['plugindata']?.data?.videoroom !== 'created') throw new Error(`room not created: ${JSON.stringify(reply)}`);
}

/** What a simulcast publisher page's Chrome sends, between two looks. */
export interface PublisherLayers {
  /**
   * rid → width, for the layers whose encoded-frame count grew since the previous look: Chrome
   * may scale layers down, or pause the top one, under CPU load, and sends a layer only once its
   * bandwidth estimate allows.
   */
  widths: Record<string, number>;
  /** rid → kbit/s sent since the previous look. */
  kbps: Record<string, number>;
  /** rid → "PLIs received/keyframes encoded" so far. */
  keyframes: Record<string, string>;
}

/** A reader of the page's outbound simulcast layers (getStats); the first look only sets the marks. */
export function publisherLayers(page: Page): () => Promise<PublisherLayers> {
  let last: Record<string, { frames: number; bytes: number; at: number }> = {};
  return async () => {
    const now = await page.evaluate(async () => {
      const out: Record<string, { width: number; frames: number; bytes: number; at: number; pli: number; keyframes: number }> = {};
      const pc: any = (globalThis as any).ferryVideoRoom.publisher?.webrtcStuff?.pc;
      (await pc?.getStats())?.forEach((s: any) => {
        if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid && s.frameWidth) {
          out[s.rid] = { width: s.frameWidth, frames: s.framesEncoded ?? 0, bytes: s.bytesSent ?? 0, at: s.timestamp, pli: s.pliCount ?? 0, keyframes: s.keyFramesEncoded ?? 0 };
        }
      });
      return out;
    });
    const layers: PublisherLayers = { widths: {}, kbps: {}, keyframes: {} };
    for (const [rid, s] of Object.entries(now)) {
      const before = last[rid];
      if (before && s.frames > before.frames) layers.widths[rid] = s.width;
      if (before && s.at > before.at) layers.kbps[rid] = Math.round(((s.bytes - before.bytes) * 8) / (s.at - before.at));
      layers.keyframes[rid] = `${s.pli}/${s.keyframes}`;
    }
    last = Object.fromEntries(Object.entries(now).map(([rid, s]) => [rid, { frames: s.frames, bytes: s.bytes, at: s.at }]));
    return layers;
  };
}

/** The width of layer `rid`, or of the nearest lower layer sent (a layer not sent falls back, as in Janus). */
export function widthAtOrBelow(widths: Record<string, number>, rid: (typeof RIDS_LOW_TO_HIGH)[number]): number | undefined {
  for (let i = RIDS_LOW_TO_HIGH.indexOf(rid); i >= 0; i--) {
    const w = widths[RIDS_LOW_TO_HIGH[i] as string];
    if (w !== undefined) return w;
  }
  return undefined;
}
