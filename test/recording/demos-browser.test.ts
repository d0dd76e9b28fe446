// Recording from the demo pages in headless Chromium: the VideoRoom page's and the EchoTest
// page's "record" checkbox (query `record=1`) make ferry write the browser's streams; leaving
// closes the files; janus-pp-rec converts the video and ffprobe decodes frames from it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Page } from 'playwright-core';

import { pollUntil, useFerryAndChromium } from '../helpers/browser.js';
import { createVideoRoom, openVideoRoomPage } from '../helpers/videoroomPage.js';
import { engineCounters, janusPpRec, mjrFiles, mjrHeader, probe, recordingsDir } from './harness.js';

const dir = recordingsDir();
const env = useFerryAndChromium(test, { recordings: { dir } });

/** Video frames the page's PeerConnection `pcPath` sent (outbound-rtp framesEncoded). */
function framesSent(page: Page, pc: 'publisher' | 'handle', global: string): Promise<number> {
  return page.evaluate(async ([g, p]) => {
    const conn: any = (globalThis as any)[g]?.[p]?.webrtcStuff?.pc;
    let frames = 0;
    if (conn) (await conn.getStats()).forEach((s: any) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video') frames += s.framesEncoded ?? 0;
    });
    return frames;
  }, [global, pc] as const);
}

/** Converts a recorded video file as its header's codec asks, and probes it. */
async function decodeVideo(files: string[]): Promise<{ codec: string; frames: number }> {
  for (const f of files) {
    const header = await mjrHeader(f);
    if (header['t'] !== 'v') continue;
    const target = f.replace(/\.mjr$/, header['c'] === 'h264' ? '.mp4' : '.webm');
    await janusPpRec(f, target);
    return probe(target);
  }
  throw new Error(`no video recording among ${files.join(', ')}`);
}

async function waitClosed(): Promise<void> {
  const open = await pollUntil(async () => (await engineCounters(env.gw))['recordingsOpen']!, (n) => n === 0, 10_000);
  assert.is(open, 0, 'the files are closed');
}

test('VideoRoom page with "record": the publisher\'s streams are recorded, the WebM has decodable frames', async () => {
  await createVideoRoom(env.gw, { room: 1850, publishers: 2, rec_dir: `${dir}/videoroom` });
  const { page, errors } = await openVideoRoomPage(env.browser, env.gw, 'rec', 1850, '&record=1');
  try {
    const sent = await pollUntil(() => framesSent(page, 'publisher', 'ferryVideoRoom'), (n) => n > 60, 30_000);
    assert.ok(sent > 60, `Chrome sent ${sent} frames; page errors: ${errors.join(' | ')}`);
    const listed = await page.evaluate(() => ((globalThis as any).ferryVideoRoom.recordings ?? []) as { type: string; path: string }[]);
    // The page publishes a data channel (its chat) too: its text messages have a file of their own.
    assert.equal(listed.map((r) => r.type).sort(), ['audio', 'data', 'video'], 'the configure answer listed the files to the page');
    await page.click('#leave');
    await waitClosed();
    const video = await decodeVideo(mjrFiles(`${dir}/videoroom`));
    assert.ok(video.frames > 30, `${video.frames} ${video.codec} frames decoded from the recording`);
  } finally {
    await page.context().close();
  }
});

test('EchoTest page with "record": the echoed streams are recorded, the video decodes', async () => {
  const page = await env.browser.newPage({ viewport: { width: 1280, height: 720 } });
  try {
    await page.goto(`${env.gw.origin}${env.gw.config.demos.path}/echotest.html?autostart=1&record=1`);
    const sent = await pollUntil(() => framesSent(page, 'handle', 'ferryEchoTest'), (n) => n > 60, 30_000);
    assert.ok(sent > 60, `Chrome sent ${sent} frames`);
    const files = mjrFiles(dir).filter((f) => /\/echotest-\d+-\d+-(audio|video)\.mjr$/.test(f));
    assert.is(files.length, 2, `one file per stream: ${mjrFiles(dir).join(', ')}`);
    await page.click('#stop');
    await waitClosed();
    const video = await decodeVideo(files);
    assert.ok(video.frames > 30, `${video.frames} ${video.codec} frames decoded from the recording`);
  } finally {
    await page.close();
  }
});

test.run();
