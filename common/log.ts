// The process's log: pino, one JSON object per line on stderr (what a log shipper reads), or
// readable lines when stderr is a terminal. Every part gets a Logger injected; a job's logger
// carries the job's fields, so each line says which commit, gateway and job it is about.
import pino, { type DestinationStream, type LevelWithSilent, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

/** The fields a line about a job carries (absent when they do not apply). */
export interface JobFields {
  queue?: string;
  job?: string;
  /** the handler kind (eip, dnat, …), or the queue for other jobs */
  kind?: string;
  commit?: string;
  gateway?: string;
  /** the gateway record's generation the job works for */
  gen?: number;
  cause?: string;
  /** a preview's pull request */
  pullRequest?: number;
  attempt?: number;
  durationMs?: number;
}

export interface LoggerOptions {
  level?: LevelWithSilent;
  /** readable lines instead of JSON (default: when stderr is a terminal) */
  pretty?: boolean;
  /** where lines go (default stderr); tests collect them */
  destination?: DestinationStream;
}

export async function createLogger(opts: LoggerOptions = {}): Promise<Logger> {
  const options = {
    level: opts.level ?? 'info',
    base: { pid: process.pid },
    // the time as an ISO string: read by people at 3 a.m. as often as by machines
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  if (opts.destination) return pino(options, opts.destination);
  if (opts.pretty ?? process.stderr.isTTY === true) {
    // loaded only for a terminal: JSON needs none of it
    const { default: pretty } = await import('pino-pretty');
    return pino(
      options,
      pretty({ destination: 2, sync: true, ignore: 'pid,hostname', translateTime: 'SYS:HH:MM:ss.l' }),
    );
  }
  return pino(options, pino.destination({ dest: 2, sync: true }));
}

/** A logger that drops everything (commands whose output is their result, tests that don't look). */
export const silentLogger = (): Logger => pino({ level: 'silent' });

/**
 * One warning per outage of a connection that retries by itself, and one line when it is back.
 * ioredis reconnects every few hundred ms and each attempt is an 'error': logged one by one, a
 * Redis starting beside natops filled its first seconds with errors.
 */
export function outageLog(log: Logger, what: string): { failed(message: string): void; recovered(): void } {
  let failures = 0;
  return {
    failed(message) {
      if (failures++ === 0) log.warn(`${what} unreachable: ${message} (retrying; one line when it is back)`);
    },
    recovered() {
      if (failures > 0)
        log.info(`${what} reachable again after ${failures} failed attempt${failures === 1 ? '' : 's'}`);
      failures = 0;
    },
  };
}
