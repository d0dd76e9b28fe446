import { densityRun } from './density.bench.js';
const r = await densityRun({ rooms: 10, subscribers: 10, seconds: Number(process.env.SECS ?? 8) });
console.log(JSON.stringify({ us: r.usPerPacket.toFixed(3), ratio: r.ratio.toFixed(4), delivered: r.delivered, cpuShare: r.cpuShare.toFixed(3) }));
