/**
 * The whole `etl` command line on commander: every command, the help and the usage errors. Each command lives
 * in commands/ and returns its exit code; a command's module is loaded only when that command runs, so
 * `etl validate` never loads the runtime, telemetry or database drivers. The usual `etl apply` and `etl validate`
 * command lines skip this module (quick.ts): loading commander took ~40 ms of a ~150 ms budget.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import {
  type ApplyCommandOptions,
  applyCommand,
  defaultLogLevel,
  packageVersion,
  LOG_FORMATS,
  LOG_LEVELS,
  parseForget,
  parseRename,
  VALIDATE_FORMATS,
  type ValidateCommandOptions,
  validateCommand,
} from './actions.ts';
import type { GraphFormat } from './commands/graph.ts';
import type { ServeSecurityOptions } from './commands/serve.ts';
import { guardStdout } from './stdout-guard.ts';

function collectRename(value: string, previous: Record<string, string> | undefined): Record<string, string> {
  const ids = parseRename(value);
  if (!ids) throw new InvalidArgumentError('expected old=new, two stage ids');
  return { ...previous, [ids[0]]: ids[1] };
}

function oneOf<T extends string>(allowed: readonly T[]) {
  return (value: string): T => {
    if ((allowed as readonly string[]).includes(value)) return value as T;
    throw new InvalidArgumentError(`expected one of: ${allowed.join(', ')}`);
  };
}

/** What `apply` and `validate` do once parsed; tests give their own to see what commander parsed. */
export interface ProgramActions {
  apply(paths: string[], opts: ApplyCommandOptions): Promise<number>;
  validate(paths: string[], opts: ValidateCommandOptions): Promise<number>;
}

const ACTIONS: ProgramActions = { apply: applyCommand, validate: validateCommand };

export async function runProgram(argv: string[], actions: ProgramActions = ACTIONS): Promise<number> {
  let exitCode = 0;
  const program = new Command()
    .name('etl')
    .description('Declarative, backpressured pipelines for web access logs.')
    .version(packageVersion(), '-v, --version')
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
      (value: string, previous: string[] | undefined) => [...(previous ?? []), ...parseForget(value)],
    )
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default(defaultLogLevel()))
    .addOption(
      new Option('--log-format <format>', 'pretty: a line per event for people; json: a JSON object per line')
        .choices(LOG_FORMATS)
        .default('pretty'),
    )
    .action(async (paths: string[], opts: ApplyCommandOptions) => {
      exitCode = await actions.apply(paths, opts);
    });

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
    .option('--api-keys', 'require an API key (etl keys create) on every route but the probes; roles, audit log')
    .option('--data-dir <dir>', 'where the embedded key store and audit log live', '.etl')
    .option('--postgres-url <url>', 'keep keys and audit log on this PostgreSQL server (daemons that share them)')
    .option('--tls-cert <file>', 'PEM certificate: serve HTTPS, TLS 1.3 only (with --tls-key)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--allow-plain-http', 'allow plain HTTP on an address other than loopback', false)
    .option('--redis-url <url>', 'Redis for rate-limit counters shared by several daemons')
    .option(
      '--rate-limit <n>',
      'requests per key per minute',
      (v: string) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number above 0');
        return n;
      },
      600,
    )
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default(defaultLogLevel()))
    .addOption(
      new Option('--log-format <format>', 'pretty: a line per event for people; json: a JSON object per line')
        .choices(LOG_FORMATS)
        .default('pretty'),
    )
    .action(
      async (
        opts: Omit<ServeSecurityOptions, 'apiKeys'> & {
          configDir?: string;
          listen: string;
          logLevel: 'debug' | 'info' | 'warn' | 'error';
          logFormat: 'pretty' | 'json';
          /** Absent unless `--api-keys` is given. */
          apiKeys?: boolean;
        },
      ) => {
        const { runServe } = await import('./commands/serve.ts');
        const { configDir, listen, logLevel, logFormat, apiKeys, ...security } = opts;
        exitCode = await runServe({
          ...(configDir ? { configDir } : {}),
          listen,
          logLevel,
          logFormat,
          security: { ...security, apiKeys: apiKeys === true },
          err: process.stderr,
        });
      },
    );

  program
    .command('validate')
    .description('check pipeline files without running anything; exit 1 on errors')
    .argument('<paths...>', 'pipeline files (.yaml) or directories of them')
    .addOption(new Option('--format <format>', 'output format').choices(VALIDATE_FORMATS).default('text'))
    .action(async (paths: string[], opts: ValidateCommandOptions) => {
      exitCode = await actions.validate(paths, opts);
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

  const keys = program
    .command('keys')
    .description('create, list and revoke the API keys of `etl serve`')
    .option('--data-dir <dir>', "the daemon's data directory (its embedded key store)", '.etl')
    .option('--postgres-url <url>', 'the PostgreSQL server holding the keys, when the daemons share one')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'));
  type KeysGlobal = { dataDir: string; postgresUrl?: string; format: 'text' | 'json' };
  const runKeys = async (command: import('./commands/keys.ts').KeysCommand) => {
    const { runKeys } = await import('./commands/keys.ts');
    const opts = keys.opts<KeysGlobal>();
    exitCode = await runKeys(command, { ...opts, out: process.stdout, err: process.stderr });
  };
  keys
    .command('create')
    .description('create a key and print it (shown only once)')
    .requiredOption('--name <name>', 'who or what the key is for')
    .requiredOption('--role <role>', 'viewer, operator or admin')
    .action((opts: { name: string; role: string }) => runKeys({ action: 'create', ...opts }));
  keys
    .command('list')
    .description('list the keys (never their secrets)')
    .option('--all', 'include revoked keys', false)
    .action((opts: { all: boolean }) => runKeys({ action: 'list', all: opts.all }));
  keys
    .command('revoke')
    .description('revoke a key: the next request with it is refused')
    .argument('<id>', 'the key id (the 16 hex digits after etl_)')
    .action((id: string) => runKeys({ action: 'revoke', id }));

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
        signal: guardStdout().readerGone,
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
      // `etl tap x | head` ends when head does, as Ctrl-C ends it.
      guardStdout().readerGone.addEventListener('abort', () => interrupted.abort(), { once: true });
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

  program
    .command('report')
    .description('write a self-contained HTML report (charts and tables) of what pipelines stored')
    .requiredOption(
      '--pipeline <file>',
      'a pipeline whose tables to report on (repeatable: traffic + threats + performance)',
      (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
    )
    .option('--from <time>', 'start of the period (ISO 8601, inclusive)')
    .option('--to <time>', 'end of the period (ISO 8601, exclusive)')
    .option('--url <url>', "PostgreSQL URL instead of the pipelines' own database")
    .option('--out <file>', 'where to write the HTML', 'report.html')
    .action(async (opts: { pipeline: string[]; from?: string; to?: string; url?: string; out: string }) => {
      const { runReport } = await import('./commands/report.ts');
      exitCode = await runReport({
        ...opts,
        pipelines: opts.pipeline,
        out: process.stdout,
        err: process.stderr,
        file: opts.out,
      });
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
