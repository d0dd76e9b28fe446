#!/usr/bin/env node
/**
 * `ferry-pp OUT.webm A.mjr [B.mjr]`: one WebM from a publisher's recordings (its Opus audio
 * and/or VP8 video `.mjr` files, as ferry or Janus writes them), audio and video in sync by
 * the times the files' headers give. janus-pp-rec converts one stream per file; this puts a
 * publisher's streams together. Prints what it wrote as JSON.
 */
import { readFileSync, writeFileSync } from 'node:fs';

import { readMjr } from './media/MjrFile.js';
import { exportWebm } from './media/WebmExport.js';

const HELP = `ferry-pp — a publisher's .mjr recordings to one WebM, audio and video in sync

Usage: ferry-pp OUT.webm AUDIO.mjr [VIDEO.mjr]
       (one Opus and/or one VP8 recording, e.g. videoroom-<room>-user-<id>-<µs>-audio-0.mjr
        and …-video-1.mjr; for one stream, or other codecs, use Janus's janus-pp-rec)
`;

async function main(argv: string[]): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help') || argv.length < 2) {
    process.stdout.write(HELP);
    return argv.length < 2 && !argv.includes('-h') && !argv.includes('--help') ? 2 : 0;
  }
  const [out, ...inputs] = argv as [string, ...string[]];
  if (!out.endsWith('.webm')) throw new Error(`the output must be a .webm file (got ${out})`);
  const recordings = inputs.map((path) => {
    try {
      return readMjr(readFileSync(path));
    } catch (err) {
      throw new Error(`${path}: ${(err as Error).message}`);
    }
  });
  const { webm, tracks } = await exportWebm(recordings);
  writeFileSync(out, webm);
  process.stdout.write(`${JSON.stringify({ output: out, bytes: webm.byteLength, tracks })}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`ferry-pp: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
