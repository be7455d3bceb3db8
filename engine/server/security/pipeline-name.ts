/**
 * Pipeline names as they arrive in API paths and bodies. A name becomes a file name in the config
 * directory and in the data directory, so it must never be able to leave them: the pattern of pipeline
 * documents (no `/`, `\`, `.` or `..`, no leading `-`) and a length bound, checked again after joining.
 */
import { resolve, sep } from 'node:path';
import { PIPELINE_NAME_PATTERN } from '../../schema/envelope.ts';

export const PIPELINE_NAME_MAX_LENGTH = 128;

const PATTERN = new RegExp(PIPELINE_NAME_PATTERN);

/** JSON Schema for a route parameter or body property holding a pipeline name (Fastify answers 400). */
export const pipelineNameSchema = {
  type: 'string',
  pattern: PIPELINE_NAME_PATTERN,
  minLength: 1,
  maxLength: PIPELINE_NAME_MAX_LENGTH,
  description: 'A pipeline name: letters, digits, `_` and `-`, starting with a letter or digit.',
} as const;

/** Why `name` is not a pipeline name, or undefined when it is one. */
export function pipelineNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return 'a pipeline name is a string';
  if (name.length === 0) return 'a pipeline name is not empty';
  if (name.length > PIPELINE_NAME_MAX_LENGTH)
    return `a pipeline name has at most ${PIPELINE_NAME_MAX_LENGTH} characters`;
  if (!PATTERN.test(name)) {
    return `${JSON.stringify(name)} is not a pipeline name: letters, digits, \`_\` and \`-\` only, starting with a letter or digit`;
  }
  return undefined;
}

export function isPipelineName(name: unknown): name is string {
  return pipelineNameProblem(name) === undefined;
}

/**
 * `<dir>/<name><suffix>`, refusing a name that is not a pipeline name or a result outside `dir` (the
 * second check guards the first against a later change of the pattern).
 */
export function pipelinePath(dir: string, name: string, suffix = ''): string {
  const problem = pipelineNameProblem(name);
  if (problem) throw new RangeError(problem);
  const base = resolve(dir);
  const path = resolve(base, `${name}${suffix}`);
  if (!path.startsWith(base + sep)) throw new RangeError(`${JSON.stringify(name)} leads out of ${base}`);
  return path;
}
