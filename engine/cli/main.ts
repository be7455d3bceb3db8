/**
 * The `etl` command line: `etl apply`, `etl validate` and `etl --version` as they are usually typed are parsed
 * by quick.ts; anything else (help, the other commands, usage errors) by commander in program.ts, loaded then.
 * Whatever the command, standard output is guarded first (stdout-guard.ts): a reader that goes away ends it quietly.
 */
import { applyCommand, packageVersion, validateCommand } from './actions.ts';
import { parseQuick } from './quick.ts';
import { guardStdout } from './stdout-guard.ts';

export async function main(argv: string[]): Promise<number> {
  const stdout = guardStdout();
  return stdout.exitCode(await command(argv));
}

async function command(argv: string[]): Promise<number> {
  const quick = parseQuick(argv);
  if (quick === undefined) {
    const { runProgram } = await import('./program.ts');
    return runProgram(argv);
  }
  try {
    if (quick.command === 'version') {
      process.stdout.write(`${packageVersion()}\n`);
      return 0;
    }
    if (quick.command === 'apply') return await applyCommand(quick.paths, quick.options);
    return await validateCommand(quick.paths, quick.options);
  } catch (error) {
    // As program.ts reports a command's failure.
    process.stderr.write(`etl: ${(error as Error).message}\n`);
    return 1;
  }
}
