// A logger for tests: natops's own (pino, JSON), its lines collected as parsed records and as
// their messages (what most assertions read).
import { createLogger, type Logger } from '../../common/log.ts';

export type LogRecord = Record<string, unknown> & { level: string; msg: string };

export interface CollectedLogs {
  logger: Logger;
  /** every line's message, in order */
  messages: string[];
  records: LogRecord[];
}

export async function collectLogs(
  messages: string[] = [],
  records: LogRecord[] = [],
  level: 'info' | 'debug' = 'info',
): Promise<CollectedLogs> {
  const logger = await createLogger({
    level,
    destination: {
      write(line: string) {
        const rec = JSON.parse(line) as LogRecord;
        records.push(rec);
        messages.push(rec.msg);
      },
    },
  });
  return { logger, messages, records };
}
