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
    .option('--server <url>', 'send the pipelines to a running `etl serve` instead of running them here')
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
          server?: string;
          progress: boolean;
          wait: boolean;
          reset: boolean;
          rename?: Record<string, string>;
          forget?: string[];
          logLevel: 'debug' | 'info' | 'warn' | 'error';
          logFormat: 'pretty' | 'json';
        },
      ) => {
        if (opts.server) {
          const { applyToServer, apiKeyHeaders } = await import('../serve/client.ts');
          exitCode = await applyToServer(paths, opts.dryRun ? 'diff' : 'apply', {
            server: opts.server,
            headers: apiKeyHeaders(),
            out: process.stdout,
            err: process.stderr,
          });
          return;
        }
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
    .command('diff')
    .description('what applying these pipelines to a running `etl serve` would change (nothing is applied)')
    .argument('<paths...>', 'pipeline files (.yaml) or directories of them')
    .requiredOption('--server <url>', 'the daemon, e.g. http://127.0.0.1:8080')
    .action(async (paths: string[], opts: { server: string }) => {
      const { applyToServer, apiKeyHeaders } = await import('../serve/client.ts');
      exitCode = await applyToServer(paths, 'diff', {
        server: opts.server,
        headers: apiKeyHeaders(),
        out: process.stdout,
        err: process.stderr,
      });
    });

  program
    .command('serve')
    .description('run pipelines as a daemon with a REST API; --config-dir keeps them as a directory says')
    .option('--config-dir <dir>', 'run the pipelines of this directory, following its changes')
    .option('--listen <host:port>', 'address of the API (loopback only without a security layer)', '127.0.0.1:8080')
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
      async (opts: {
        configDir?: string;
        listen: string;
        logLevel: 'debug' | 'info' | 'warn' | 'error';
        logFormat: 'pretty' | 'json';
      }) => {
        const { runServe } = await import('./commands/serve.ts');
        exitCode = await runServe({ ...opts, err: process.stderr });
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

  const metricsUrl = `http://127.0.0.1:${process.env.ETL_METRICS_PORT ?? '9464'}`;
  const positive = (what: string) => (value: string) => {
    const n = Number(value);
    if (!(n > 0)) throw new InvalidArgumentError(`expected ${what} above 0`);
    return n;
  };

  program
    .command('top')
    .description('a live view of a running pipeline: rates, backlog, errors, freshness (reads its metrics endpoint)')
    .option('--url <url>', 'the metrics server of the pipeline (telemetry.metrics.prometheus_port)', metricsUrl)
    .option('--interval <seconds>', 'seconds between refreshes', positive('a number of seconds'), 1)
    .option('--once', 'print one frame (two scrapes an interval apart) and exit', false)
    .action(async (opts: { url: string; interval: number; once: boolean }) => {
      const { runTop } = await import('./commands/top.ts');
      exitCode = await runTop({
        url: opts.url,
        intervalMs: opts.interval * 1000,
        once: opts.once,
        out: process.stdout,
        err: process.stderr,
        input: process.stdin,
      });
    });

  program
    .command('tap')
    .description("print live samples of the records on a stage's port of a running pipeline, as JSON lines")
    .argument('<stage>', 'the stage, and its port after a dot when not `default` (`parsed.dead_letter`)')
    .option('--url <url>', 'the metrics server of the pipeline (telemetry.metrics.prometheus_port)', metricsUrl)
    .option('--pipeline <name>', 'the pipeline, when the process runs several with this stage id')
    .option('--rate <n>', 'records per second at most', positive('a rate'), 10)
    .option('--limit <n>', 'stop after this many records', positive('a count'))
    .action(async (stage: string, opts: { url: string; pipeline?: string; rate: number; limit?: number }) => {
      const { runTap } = await import('./commands/tap.ts');
      const interrupted = new AbortController();
      const onSignal = () => interrupted.abort();
      process.once('SIGINT', onSignal);
      try {
        exitCode = await runTap(stage, {
          ...opts,
          out: process.stdout,
          err: process.stderr,
          signal: interrupted.signal,
        });
      } finally {
        process.off('SIGINT', onSignal);
      }
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
