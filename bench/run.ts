// `npm run bench` — every benchmark, printed as a table; `-- --json` prints the
// same figures as a JSON array of {name, value, unit}; `-- --short` runs each
// case briefly (what CI runs).
import { availableParallelism } from 'node:os';

import { Figures } from './figures.js';
import { benchDataChannels } from './datachannel.bench.js';
import { benchDensity } from './density.bench.js';
import { benchForward, benchScaling } from './forward.bench.js';
import { benchRoom } from './room.bench.js';
import { benchBweEstimator, benchNackGenerator, benchSrtp } from './srtp.bench.js';
import { benchStreaming } from './streaming.bench.js';
import { benchVideoroomWerift } from './videoroom-werift.bench.js';

const args = new Set(process.argv.slice(2));
const json = args.has('--json');
const short = args.has('--short') || process.env.FERRY_BENCH_SHORT === '1';
const seconds = short ? 0.3 : 1.5;

const figures = new Figures();
const log = (msg: string) => {
  if (!json) console.log(msg);
};
log(`ferry benchmarks (${short ? 'short' : 'full'} run, ${seconds}s per case; 1200-byte payloads)`);
if (args.has('--scaling')) {
  // Only the thread-scaling series (see benchScaling), for hosts with many cores.
  await benchScaling(figures, seconds * 2, availableParallelism());
  figures.print(json);
  process.exit(0);
}
benchSrtp(figures, seconds);
benchNackGenerator(figures, seconds);
benchBweEstimator(figures, seconds);
await benchForward(figures, seconds * 1.5);
await benchRoom(figures, seconds * 1.5);
await benchStreaming(figures, seconds * 1.5);
await benchDensity(figures, short);
await benchVideoroomWerift(figures, short);
await benchDataChannels(figures, short);
figures.print(json);
