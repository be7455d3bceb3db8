/**
 * The `etl` command line. Each command lives in commands/ and returns its exit code; a command's module is
 * loaded only when that command runs, so `etl --version` or `etl validate` never load the runtime,
 * telemetry or database drivers.
 */
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { GraphFormat } from './commands/graph.ts';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

function collectRename(value: string, previous: Record<string, string> | undefined): Record<string, string> {
  const match = /^([A-Za-z][\w-]*)=([A-Za-z][\w-]*)$/.exec(value);
  if (!match) throw new InvalidArgumentError('expected old=new, two stage ids');
  return { ...previous, [match[1] as string]: match[2] as string };
}

function oneOf<T extends string>(allowed: readonly T[]) {
  return (value: string): T => {
    if ((allowed as readonly string[]).includes(value)) return value as T;
    throw new InvalidArgumentError(`expected one of: ${allowed.join(', ')}`);
  };
}

export async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const program = new Command()
    .name('etl')
    .description('Declarative, backpressured pipelines for web access logs.')
    .version(pkg.version, '-v, --version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('apply')
    .description('validate, then run the pipelines in the given files or directories')
    .argument('<paths...>', 'pipeline files (.yaml) or directories of them')
    .option('--dry-run', 'print what the sinks would change (e.g. DDL) and exit', false)
    .option('--no-progress', 'no live progress line, even on a terminal')
    .option('--wait', 'when another process runs one of these pipelines, wait for it instead of refusing', false)
    .option('--reset', 'start over: set the checkpoints aside and read every source from the start', false)
    .option(
      '--rename <old=new>',
      'a stage was renamed since the last checkpoint: its state carries over to the new id (repeatable)',
      collectRename,
    )
    .option(
      '--forget <ids>',
      'stages whose checkpoint state is dropped, so that they start fresh (comma-separated, repeatable)',
      (value: string, previous: string[] | undefined) => [...(previous ?? []), ...value.split(',').filter(Boolean)],
    )
    .addOption(
      new Option('--log-level <level>', 'log level')
        .choices(['debug', 'info', 'warn', 'error'])
        .default(process.env.ETL_LOG_LEVEL ?? 'info'),
    )
    .addOption(
      new Option('--log-format <format>', 'pretty: a line per event for people; json: a JSON object per line')
        .choices(['pretty', 'json'])
        .default('pretty'),
    )
    .action(
      async (
        paths: string[],
        opts: {
          dryRun: boolean;
          progress: boolean;
          wait: boolean;
          reset: boolean;
          rename?: Record<string, string>;
          forget?: string[];
          logLevel: 'debug' | 'info' | 'warn' | 'error';
          logFormat: 'pretty' | 'json';
        },
      ) => {
        const { runApply } = await import('./commands/apply.ts');
        const { rename, ...rest } = opts;
        exitCode = await runApply(paths, {
          ...rest,
          renames: rename ?? {},
          forget: rest.forget ?? [],
          out: process.stdout,
          err: process.stderr,
        });
      },
    );

  program
    .command('validate')
    .description('check pipeline files without running anything; exit 1 on errors')
    .argument('<paths...>', 'pipeline files (.yaml) or directories of them')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (paths: string[], opts: { format: 'text' | 'json' }) => {
      const { runValidate } = await import('./commands/validate.ts');
      exitCode = await runValidate(paths, { format: opts.format, out: process.stdout, err: process.stderr });
    });

  program
    .command('graph')
    .description('print the pipeline graph as Mermaid or Graphviz dot, or the fields on each edge')
    .argument('<paths...>', 'pipeline files (.yaml) or directories of them')
    .option('--format <format>', 'mermaid or dot', oneOf<GraphFormat>(['mermaid', 'dot']), 'mermaid' as GraphFormat)
    .option('--fields', 'instead of the chart, list the fields and their types on each edge')
    .action(async (paths: string[], opts: { format: GraphFormat; fields?: boolean }) => {
      const { runGraph } = await import('./commands/graph.ts');
      exitCode = await runGraph(paths, {
        format: opts.format,
        fields: opts.fields === true,
        out: process.stdout,
        err: process.stderr,
      });
    });

  program
    .command('schema')
    .description('print the JSON Schema of pipeline documents (for editors and CI)')
    .action(async () => {
      const { runSchema } = await import('./commands/schema.ts');
      exitCode = await runSchema({ out: process.stdout });
    });

  program
    .command('query')
    .description("run SQL on a pipeline's PostgreSQL database (embedded or real)")
    .argument('<sql>', 'the SQL to run')
    .option('--pipeline <file>', 'take the database from the postgres sink of this pipeline file')
    .option('--url <url>', 'PostgreSQL URL (default: DATABASE_URL, else the embedded database)')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'csv', 'json']).default('table'))
    .action(async (sql: string, opts: { pipeline?: string; url?: string; format: 'table' | 'csv' | 'json' }) => {
      const { runQuery } = await import('./commands/query.ts');
      exitCode = await runQuery(sql, { ...opts, out: process.stdout });
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    const code = (error as { code?: string; exitCode?: number }).code;
    if (code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help') return 0;
    if (typeof (error as { exitCode?: number }).exitCode === 'number') return 2;
    process.stderr.write(`etl: ${(error as Error).message}\n`);
    return 1;
  }
  return exitCode;
}
