/** pino JSON logs, plus the mapping between Janus's numeric log levels and pino's. */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger } from 'pino';

export function createLogger(level: LevelWithSilent, destination?: pino.DestinationStream): Logger {
  const options = { level, base: { name: 'ferry' }, timestamp: pino.stdTimeFunctions.isoTime };
  return destination ? pino(options, destination) : pino(options);
}

/** Janus levels: 0 none, 1 fatal, 2 error, 3 warn, 4 info, 5 verbose, 6 huge, 7 debug. */
const JANUS_TO_PINO: readonly LevelWithSilent[] = ['silent', 'fatal', 'error', 'warn', 'info', 'debug', 'trace', 'trace'];

export function pinoLevelFromJanus(level: number): LevelWithSilent {
  return JANUS_TO_PINO[Math.min(7, Math.max(0, Math.trunc(level)))] ?? 'info';
}

export function janusLevelFromPino(level: string): number {
  switch (level) {
    case 'silent': return 0;
    case 'fatal': return 1;
    case 'error': return 2;
    case 'warn': return 3;
    case 'info': return 4;
    case 'debug': return 5;
    default: return 7;
  }
}
