/**
 * What `etl apply` and `etl validate` do with their parsed command line; both parsers (quick.ts, program.ts)
 * end here, so that the same command line does the same thing whichever parsed it.
 */
import { readFileSync } from 'node:fs';

/** etl's version, from package.json. */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export const LOG_FORMATS = ['pretty', 'json'] as const;
export const VALIDATE_FORMATS = ['text', 'json'] as const;

export interface ApplyCommandOptions {
  dryRun: boolean;
  server?: string;
  progress: boolean;
  wait: boolean;
  reset: boolean;
  rename?: Record<string, string>;
  forget?: string[];
  logLevel: (typeof LOG_LEVELS)[number];
  logFormat: (typeof LOG_FORMATS)[number];
}

export interface ValidateCommandOptions {
  format: (typeof VALIDATE_FORMATS)[number];
}

/** `--log-level`'s default. */
export const defaultLogLevel = (): string => process.env.ETL_LOG_LEVEL ?? 'info';

/** `--rename old=new`: the ids, or undefined when the value is not two stage ids. */
export function parseRename(value: string): [string, string] | undefined {
  const match = /^([A-Za-z][\w-]*)=([A-Za-z][\w-]*)$/.exec(value);
  return match ? [match[1] as string, match[2] as string] : undefined;
}

/** `--forget a,b`: the ids it names. */
export const parseForget = (value: string): string[] => value.split(',').filter(Boolean);

export async function applyCommand(paths: string[], opts: ApplyCommandOptions): Promise<number> {
  if (opts.server) {
    const { applyToServer, apiKeyHeaders } = await import('../serve/client.ts');
    return applyToServer(paths, opts.dryRun ? 'diff' : 'apply', {
      server: opts.server,
      headers: apiKeyHeaders(),
      out: process.stdout,
      err: process.stderr,
    });
  }
  const { runApply } = await import('./commands/apply.ts');
  const { rename, server: _server, ...rest } = opts;
  return runApply(paths, {
    ...rest,
    renames: rename ?? {},
    forget: rest.forget ?? [],
    out: process.stdout,
    err: process.stderr,
  });
}

export async function validateCommand(paths: string[], opts: ValidateCommandOptions): Promise<number> {
  const { runValidate } = await import('./commands/validate.ts');
  return runValidate(paths, { format: opts.format, out: process.stdout, err: process.stderr });
}
