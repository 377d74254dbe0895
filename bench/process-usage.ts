// What processes used while a bench ran: CPU time from /proc (a process's, the whole machine's)
// and the time redis-server spent in each command (INFO commandstats); and what the machine's cores
// give processes that run at once.
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

const TICKS_PER_S = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** CPU time (ms, user and system) process `pid` has used so far. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // utime and stime are fields 14 and 15, the 12th and 13th after the command's name (which may hold spaces)
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) / TICKS_PER_S) * 1000;
}

/** The machine's busy CPU time so far (ms, every core, every process: others' too). */
export function machineBusyMs(): number {
  const [, ...t] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).map(Number);
  // user nice system idle iowait irq softirq steal: busy is all but idle and iowait
  const busy = t.slice(0, 8).reduce((a, b) => a + b, 0) - t[3]! - t[4]!;
  return (busy / TICKS_PER_S) * 1000;
}

/** Microseconds redis-server spent in each command since its statistics were last reset, and the calls. */
export async function redisCommandTime(redis: Redis): Promise<Map<string, { calls: number; usec: number }>> {
  const out = new Map<string, { calls: number; usec: number }>();
  for (const line of (await redis.info('commandstats')).split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+),/.exec(line.trim());
    if (m) out.set(m[1]!, { calls: Number(m[2]), usec: Number(m[3]) });
  }
  return out;
}

// A fixed amount of work for one core (about 0.4 s here), timed inside the process so that Node's
// start does not count; `x` is printed so that the loop cannot be left out.
const SPIN =
  'let x=0;const t=process.hrtime.bigint();for(let i=0;i<3e8;i++)x+=i%7;' +
  'process.stdout.write(Number(process.hrtime.bigint()-t)/1e6+" "+x)';

/**
 * `n` processes doing the same CPU work at once; the ms the slowest took. Against one alone: what
 * the machine's cores give processes that run together (n times one: a single core's worth).
 */
export async function cpuWork(n: number): Promise<number> {
  const one = () =>
    new Promise<number>((resolve, reject) =>
      execFile(process.execPath, ['-e', SPIN], (e, out) => (e ? reject(e) : resolve(Number(out.split(' ')[0])))),
    );
  return Math.max(...(await Promise.all(Array.from({ length: n }, one))));
}
