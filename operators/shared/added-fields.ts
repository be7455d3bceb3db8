/**
 * Checks of the fields an enrichment adds (geoip, user_agent), for their definitions' `validate`: light, so that
 * the CLI loads it without the enrichments' libraries.
 */
import type { OptionProblem, ValidateContext } from '../../engine/operator.ts';
import { fieldNames } from '../../engine/record-schema.ts';

/**
 * A warning when the fields a stage adds are fields its records already carry (two geoip stages with the same
 * prefix): the new values replace the old ones.
 */
export function replacedFields(added: readonly string[], context: ValidateContext): OptionProblem[] {
  if (context.inputSchema === undefined) return [];
  const carried = new Set(fieldNames(context.inputSchema));
  const replaced = added.filter((name) => carried.has(name));
  if (replaced.length === 0) return [];
  return [
    {
      path: ['prefix'],
      severity: 'warning',
      message: `the records reaching this stage already carry ${replaced.map((n) => `\`${n}\``).join(', ')}: replaced`,
      hint: 'give this stage another `prefix` to keep both',
    },
  ];
}
