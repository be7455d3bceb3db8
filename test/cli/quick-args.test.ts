/**
 * The quick parser of `etl apply`, `etl validate` and `etl --version` (engine/cli/quick.ts) against commander's
 * (engine/cli/program.ts): the same command for each command line it takes, and commander's for any other.
 */
import { describe, expect, it } from 'vitest';
import type { ApplyCommandOptions, ValidateCommandOptions } from '../../engine/cli/actions.ts';
import { runProgram } from '../../engine/cli/program.ts';
import { parseQuick } from '../../engine/cli/quick.ts';

/** What commander hands to `apply` or `validate` for `argv`. */
async function commanderParse(argv: string[]) {
  let seen: { command: string; paths: string[]; options: ApplyCommandOptions | ValidateCommandOptions } | undefined;
  const code = await runProgram(argv, {
    apply: async (paths, options) => {
      seen = { command: 'apply', paths, options };
      return 0;
    },
    validate: async (paths, options) => {
      seen = { command: 'validate', paths, options };
      return 0;
    },
  });
  expect(code).toBe(0);
  return seen;
}

describe('the quick command-line parser', () => {
  it('parses apply and validate as commander does', async () => {
    const taken = [
      ['apply', 'p.yaml'],
      ['apply', '--no-progress', 'a.yaml', 'dir'],
      ['apply', 'a.yaml', '--dry-run', '--wait', '--reset', '--log-level', 'debug', '--log-format=json'],
      ['apply', '--server', 'http://127.0.0.1:8080', 'a.yaml'],
      ['apply', '--rename', 'a=b', '--rename=c=d', '--rename', 'a=e', '--forget', 'x,y', '--forget', 'z', 'p.yaml'],
      ['apply', '--forget', '', 'p.yaml'],
      ['apply', '--', '--not-an-option.yaml'],
      ['validate', 'a.yaml', 'b.yaml'],
      ['validate', '--format', 'json', 'a.yaml'],
    ];
    for (const argv of taken) {
      const quick = parseQuick(argv);
      expect(quick, argv.join(' ')).toBeDefined();
      expect(quick, argv.join(' ')).toEqual(await commanderParse(argv));
    }
  });

  it('takes --version alone, and leaves every other command line to commander', () => {
    expect(parseQuick(['--version'])).toEqual({ command: 'version' });
    expect(parseQuick(['-v'])).toEqual({ command: 'version' });
    const refused = [
      [],
      ['--help'],
      ['help', 'apply'],
      ['apply'],
      ['apply', '--help'],
      ['apply', '-h', 'p.yaml'],
      ['apply', '--frob', 'p.yaml'],
      ['apply', '--progress', 'p.yaml'],
      ['apply', '--log-level', 'loud', 'p.yaml'],
      ['apply', '--log-format', 'xml', 'p.yaml'],
      ['apply', '--rename', 'a-b', 'p.yaml'],
      ['apply', '--server'],
      ['apply', '--dry-run=yes', 'p.yaml'],
      ['validate', '--format', 'yaml', 'p.yaml'],
      ['validate'],
      ['graph', 'p.yaml'],
      ['--version', 'apply'],
    ];
    for (const argv of refused) expect(parseQuick(argv), argv.join(' ')).toBeUndefined();
  });
});
