// Headless Chromium (Debian's package) driven by playwright-core, kept on loopback.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { Test } from 'uvu';
import type { ConfigOverrides } from '../../src/config/Config.js';
import { startFerry, type TestFerry } from './ferry.js';

export const CHROMIUM_PATH = process.env.FERRY_CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOT_DIR = join(process.cwd(), 'test-output', 'screenshots');

/**
 * Flags from testing-notes.md: no network services of Chromium's own (no
 * QUIC, background networking, component updates or sync), fake camera and
 * microphone with permission granted, and loopback allowed as an ICE
 * candidate. Every host name resolves to nothing except 127.0.0.1, so even a
 * page that asked for a STUN server by name could not send a packet off the
 * machine. Without the disabled features Chromium joins multicast groups on
 * the LAN interface (IGMP reports for mDNS: WebRTC's hidden-IP candidates and
 * the Cast media router), measured with a packet capture on eth0; with them, a
 * demo test sends nothing there. Playwright gives each launch a fresh
 * temporary --user-data-dir.
 */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
  '--disable-features=WebRtcHideLocalIpsWithMdns,MediaRouter,DialMediaRouteProvider,GlobalMediaControls',
];

/** `extraArgs`: more Chromium switches (e.g. a WebRTC IP handling policy). */
export async function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`${CHROMIUM_PATH} is missing: install Debian's chromium (.ci/install-test-peers.sh does)`);
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: [...CHROMIUM_ARGS, ...extraArgs], timeout: 60_000 });
}

/** Collects the page's console errors and uncaught exceptions for assertion messages. */
export function pageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
  });
  return errors;
}

/** Saves a full-page screenshot to test-output/screenshots/<name>.png for people to look at. */
export async function saveScreenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Polls `read` until `accept` holds or `timeoutMs` passes; returns the last value either way. */
export async function pollUntil<T>(read: () => Promise<T>, accept: (value: T) => boolean, timeoutMs: number, stepMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  while (!accept(value) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, stepMs));
    value = await read();
  }
  return value;
}

/**
 * One ferry (loopback, `overrides` applied) and one Chromium for a test file:
 * registers the suite's before/after hooks and hands both out once started.
 */
export function useFerryAndChromium(suite: Test, overrides: ConfigOverrides = {}): { readonly gw: TestFerry; readonly browser: Browser } {
  let gw: TestFerry | undefined;
  let browser: Browser | undefined;
  suite.before(async () => {
    gw = await startFerry({ log: { level: 'warn' }, ...overrides });
    browser = await launchChromium();
  });
  suite.after(async () => {
    await browser?.close();
    await gw?.stop();
  });
  return {
    get gw(): TestFerry {
      if (!gw) throw new Error('ferry is not started yet (use it inside a test)');
      return gw;
    },
    get browser(): Browser {
      if (!browser) throw new Error('Chromium is not started yet (use it inside a test)');
      return browser;
    },
  };
}
