// bench/report: how every bench records its figures, as JSON (bench/results/<bench>.json by default):
// the machine, Node, date, commit and arguments of the run, and each figure beside its same-run baseline.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { median } from './stats.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const RESULTS_DIR = join(ROOT, 'bench', 'results');

// z.number() refuses NaN and ±Infinity: a figure that did not measure cannot be recorded.
const stats = {
  n: z.number().int().positive(),
  min: z.number(),
  median: z.number(),
  max: z.number(),
};
const FigureSchema = z.object({
  /** the table of bench/README.md it belongs to */
  table: z.string().min(1),
  name: z.string().min(1),
  unit: z.enum(['ms', 'count', 'MB']),
  ...stats,
  baseline: z.object({ name: z.string().min(1), ...stats }),
  /** median / baseline median; null when the baseline's median is 0 */
  ratio: z.number().nullable(),
  note: z.string().optional(),
});
export const ResultsSchema = z.object({
  bench: z.string().min(1),
  machine: z.object({
    cpu: z.string(),
    cores: z.number().int(),
    memoryGiB: z.number(),
    kernel: z.string(),
    os: z.string(),
  }),
  node: z.string(),
  date: z.string(),
  commit: z.string(),
  args: z.record(z.string(), z.union([z.string(), z.boolean()])),
  figures: z.array(FigureSchema).min(1),
});
export type Figure = z.infer<typeof FigureSchema>;
export type Results = z.infer<typeof ResultsSchema>;
export type Unit = Figure['unit'];
export type Stats = Pick<Figure, 'n' | 'min' | 'median' | 'max'>;

/** n, min, median and max of some samples. */
export function summary(samples: readonly number[]): Stats {
  return { n: samples.length, min: Math.min(...samples), median: median([...samples]), max: Math.max(...samples) };
}

/** A measured series: its name and its samples (or, measured elsewhere, its summary). */
export interface Series {
  name: string;
  values: readonly number[] | Stats;
}
// to the microsecond (times are in ms): more digits are noise, and noise in the committed files
const round = (x: number) => Math.round(x * 1000) / 1000;
function statsOf(s: Series): Stats {
  const v = 'n' in s.values ? s.values : summary(s.values);
  return { n: v.n, min: round(v.min), median: round(v.median), max: round(v.max) };
}

/** The `--out` option every bench takes: where its JSON goes. */
export const outOption = (bench: string) =>
  ({
    out: { type: 'string', default: join(RESULTS_DIR, `${bench}.json`) },
  }) as const;

function machine(): Results['machine'] {
  let os = '';
  try {
    os = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? '';
  } catch {
    // not every system has it; the kernel is still recorded
  }
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    os,
  };
}

/** One bench run's figures; `write` checks them all and writes the JSON. */
export class Report {
  private readonly figures: Figure[] = [];
  private readonly args: Results['args'];

  constructor(
    private readonly bench: string,
    args: Record<string, string | boolean | undefined>,
  ) {
    // `out` is where the figures go, not how they were measured
    this.args = Object.fromEntries(
      Object.entries(args).filter((e): e is [string, string | boolean] => e[0] !== 'out' && e[1] !== undefined),
    );
  }

  /** Records `measured` against `baseline`, both from this run. Refuses a figure that did not measure. */
  add(table: string, unit: Unit, measured: Series, baseline: Series, note?: string): void {
    // (the types demand a baseline; this is for callers the types do not reach)
    if (!baseline?.values) throw new Error(`bench/${this.bench}: figure "${measured.name}" has no baseline`);
    const m = statsOf(measured);
    const b = statsOf(baseline);
    const figure: Figure = {
      table,
      name: measured.name,
      unit,
      ...m,
      baseline: { name: baseline.name, ...b },
      ratio: b.median === 0 ? null : Number((m.median / b.median).toPrecision(4)),
      ...(note === undefined ? {} : { note }),
    };
    const checked = FigureSchema.safeParse(figure);
    if (!checked.success)
      throw new Error(`bench/${this.bench}: figure "${measured.name}": ${z.prettifyError(checked.error)}`);
    this.figures.push(figure);
  }

  /** Everything about this run, checked. */
  results(): Results {
    const checked = ResultsSchema.safeParse({
      bench: this.bench,
      machine: machine(),
      node: process.version,
      date: new Date().toISOString(),
      commit: execFileSync('git', ['-C', ROOT, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim(),
      args: this.args,
      figures: this.figures,
    });
    if (!checked.success) throw new Error(`bench/${this.bench}: ${z.prettifyError(checked.error)}`);
    return checked.data;
  }

  async write(file: string): Promise<void> {
    const results = this.results();
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
    process.stderr.write(`figures written to ${file}\n`);
  }
}
