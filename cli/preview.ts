// natops preview: what a pull request would change on each gateway, read from a local repository
// (the head commit's manifests planned against its merge base with the base, as GitHub's diff of
// a pull request; nothing live is read). The modules that do the work load when it runs.
import { InvalidArgumentError, Option, type Command } from 'commander';
import { NatopsError } from '../common/errors.ts';

class PreviewUsageError extends NatopsError {}

interface PreviewFlags {
  base: string;
  head: string;
  repo?: string;
  path: string;
  redis?: string;
  format: 'text' | 'markdown';
  limit?: number;
  prove?: boolean;
  proveLimit: number;
  proveTime: number;
}

/** The git directory of the repository `dir` is in (a work tree or a bare repository). */
async function gitDirOf(dir: string): Promise<string> {
  const { run } = await import('../common/exec.ts');
  const r = await run(['git', '-C', dir, 'rev-parse', '--absolute-git-dir'], { okExitCodes: [0, 128] });
  if (r.code !== 0)
    throw new PreviewUsageError(`${dir} is not in a git repository (give one with --repo): ${r.stderr.trim()}`);
  return r.stdout.trim();
}

function positiveInt(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError('must be a positive whole number');
  return n;
}

export function addPreviewCommand(program: Command): void {
  program
    .command('preview')
    .description(
      "show what a change would do to each gateway: the head commit's manifests planned against the base's (exit 1 when the head has validation errors)",
    )
    .requiredOption(
      '--base <ref>',
      'the branch, tag or commit the change goes into (compared from its merge base with the head, as a pull request is)',
    )
    .requiredOption('--head <ref>', 'the branch, tag or commit with the change')
    .option('--repo <dir>', 'the repository (a work tree or a git directory); default the one of the current directory')
    .option('--path <dir>', 'the manifests inside the repository', '.')
    .option('--redis <url>', "the EIP allocations' Redis (NATOPS_REDIS_URL; default: the one `natops serve` records)")
    .addOption(
      new Option('--format <format>', 'text for a terminal, markdown as a pull-request comment')
        .choices(['text', 'markdown'])
        .default('text'),
    )
    .addOption(
      new Option(
        '--limit <chars>',
        'markdown: cut the detail to fit in this many characters, as a comment must',
      ).argParser(positiveInt),
    )
    .option(
      '--prove',
      'build base and head each in a throwaway lab (root; nothing live is touched) and send real packets through every mapping (exit 3 when one of the head does not answer)',
    )
    .addOption(
      new Option('--prove-limit <probes>', '--prove: the most probes per side, sampled evenly beyond it')
        .argParser(positiveInt)
        .default(50),
    )
    .addOption(
      new Option('--prove-time <seconds>', '--prove: the time limit for both sides')
        .argParser(positiveInt)
        .default(120),
    )
    // Usage errors exit 2 like natops's other refusals (commander's own default is 1, which here means "invalid head").
    .exitOverride((e) => process.exit(e.exitCode === 0 ? 0 : 2))
    .action(async (opts: PreviewFlags) => {
      const [
        { GitRepo },
        { validatedAt },
        { renderMarkdown },
        { previewChanges },
        { renderText },
        { manifestRulesFromEnv },
      ] = await Promise.all([
        import('../gitops/git/local-source.ts'),
        import('../gitops/git/validated.ts'),
        import('../preview/markdown.ts'),
        import('../preview/preview.ts'),
        import('../preview/text.ts'),
        import('../server/config.ts'),
      ]);
      const repo = new GitRepo(await gitDirOf(opts.repo ?? '.'));
      const headSha = await repo.resolveRef(opts.head);
      // As a pull request's diff: the head's changes since it left the base (their merge base).
      const tip = await repo.resolveRef(opts.base);
      const baseSha = (await repo.mergeBase(tip, headSha)) ?? tip;
      const limits = manifestRulesFromEnv();
      // EIPs without v4ip at the addresses natops allocated, when there is a Redis to read them from
      const { input } = await (await import('./allocations.ts')).planAllocations(opts.redis);
      const base = await validatedAt(repo, baseSha, opts.path, limits, undefined, input);
      const head = await validatedAt(repo, headSha, opts.path, limits, undefined, input);
      const preview = previewChanges(base, head, { base: opts.base, head: opts.head });
      // a refused or disabled head changes nothing: there is nothing to prove
      if (opts.prove && !preview.head.refused && preview.head.enabled) {
        if (process.getuid?.() !== 0) throw new PreviewUsageError('--prove builds network namespaces: run it as root');
        const { provePreview, PROVE_DEFAULTS } = await import('../functions/preview/prove.ts');
        const { changedGateways } = await import('../preview/proof.ts');
        const changed = changedGateways(preview);
        preview.proof = await provePreview(base.desired.enabled ? base.desired : undefined, head.desired, changed, {
          ...PROVE_DEFAULTS,
          limit: opts.proveLimit,
          timeLimitMs: opts.proveTime * 1000,
        });
      }
      const path = opts.path === '.' ? '' : ` --path ${opts.path}`;
      const text =
        opts.format === 'markdown'
          ? renderMarkdown(preview, {
              limit: opts.limit,
              fullCommand: `natops preview --base ${opts.base} --head ${opts.head}${path}`,
            })
          : renderText(preview);
      process.stdout.write(`${text}\n`);
      if (head.issues.length) process.exitCode = 1;
      else if (preview.proof && (await import('../preview/proof.ts')).headFailed(preview.proof)) process.exitCode = 3;
    });
}
