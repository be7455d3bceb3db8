/**
 * The command lines nearly every start is made of, `etl apply <paths>`, `etl validate <paths>` and
 * `etl --version`, parsed with node's util.parseArgs: loading commander (program.ts) took ~40 ms, a quarter of
 * the start-up budget of a one-line `etl apply`. commander still does everything else: the help, the other
 * commands, and every usage error, for a command line this parser does not take as it stands (an unknown or
 * misspelt option, a value not among the choices, no path, `--help`) goes to commander, which answers as it
 * always did. A test holds the two to the same result for the command lines taken here.
 */
import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import {
  type ApplyCommandOptions,
  defaultLogLevel,
  LOG_FORMATS,
  LOG_LEVELS,
  parseForget,
  parseRename,
  VALIDATE_FORMATS,
  type ValidateCommandOptions,
} from './actions.ts';

export type QuickCommand =
  | { readonly command: 'version' }
  | { readonly command: 'apply'; readonly paths: string[]; readonly options: ApplyCommandOptions }
  | { readonly command: 'validate'; readonly paths: string[]; readonly options: ValidateCommandOptions };

const APPLY_OPTIONS = {
  'dry-run': { type: 'boolean' },
  server: { type: 'string' },
  'no-progress': { type: 'boolean' },
  wait: { type: 'boolean' },
  reset: { type: 'boolean' },
  rename: { type: 'string', multiple: true },
  forget: { type: 'string', multiple: true },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
} as const satisfies ParseArgsOptionsConfig;

const VALIDATE_OPTIONS = { format: { type: 'string' } } as const satisfies ParseArgsOptionsConfig;

const among = <T extends string>(allowed: readonly T[], value: string): value is T =>
  (allowed as readonly string[]).includes(value);

/** The command, or undefined when commander is to parse this command line (and explain what is wrong with it). */
export function parseQuick(argv: readonly string[]): QuickCommand | undefined {
  const [command, ...rest] = argv;
  if (argv.length === 1 && (command === '-v' || command === '--version')) return { command: 'version' };
  try {
    if (command === 'apply') return quickApply(rest);
    if (command === 'validate') return quickValidate(rest);
  } catch {
    // An unknown option, a missing value: commander says which.
  }
  return undefined;
}

function quickApply(args: string[]): QuickCommand | undefined {
  const { values, positionals } = parseArgs({ args, options: APPLY_OPTIONS, allowPositionals: true, strict: true });
  const logLevel = values['log-level'] ?? defaultLogLevel();
  const logFormat = values['log-format'] ?? 'pretty';
  if (positionals.length === 0 || !among(LOG_FORMATS, logFormat)) return undefined;
  // The default (ETL_LOG_LEVEL) is taken as it is, as commander does; a value given is checked.
  if (values['log-level'] !== undefined && !among(LOG_LEVELS, logLevel)) return undefined;
  let rename: Record<string, string> | undefined;
  for (const value of values.rename ?? []) {
    const ids = parseRename(value);
    if (!ids) return undefined;
    rename = { ...rename, [ids[0]]: ids[1] };
  }
  const options: ApplyCommandOptions = {
    dryRun: values['dry-run'] ?? false,
    progress: !(values['no-progress'] ?? false),
    wait: values.wait ?? false,
    reset: values.reset ?? false,
    logLevel: logLevel as ApplyCommandOptions['logLevel'],
    logFormat,
    ...(values.server === undefined ? {} : { server: values.server }),
    ...(rename === undefined ? {} : { rename }),
    ...(values.forget === undefined ? {} : { forget: values.forget.flatMap(parseForget) }),
  };
  return { command: 'apply', paths: positionals, options };
}

function quickValidate(args: string[]): QuickCommand | undefined {
  const { values, positionals } = parseArgs({ args, options: VALIDATE_OPTIONS, allowPositionals: true, strict: true });
  const format = values.format ?? 'text';
  if (positionals.length === 0 || !among(VALIDATE_FORMATS, format)) return undefined;
  return { command: 'validate', paths: positionals, options: { format } };
}
