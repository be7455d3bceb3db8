/**
 * `${VAR}`, `${VAR:-default}`, `${secret:VAR}` and `${secret:VAR:-default}` in scalar values, from the
 * environment, before schema validation. `$${` is a literal `${`. The default applies when the variable is
 * unset or empty (as in the shell). Keys are not interpolated: they are the structure of the pipeline.
 * Interpolated values are strings; the schema pass coerces "5432" to 5432 where a number is expected.
 */
import { isMap, isScalar, isSeq, type Node } from 'yaml';
import type { DocPath, PipelineDocument } from './document.ts';

const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SECRET_PREFIX = 'secret:';

export interface Interpolated {
  readonly value: string;
  /** Values of `${secret:…}` variables used. */
  readonly secrets: string[];
  readonly problems: { message: string; hint?: string }[];
}

export function interpolate(text: string, env: NodeJS.ProcessEnv): Interpolated {
  const secrets: string[] = [];
  const problems: { message: string; hint?: string }[] = [];
  if (!text.includes('${')) return { value: text, secrets, problems };
  let out = '';
  let i = 0;
  while (i < text.length) {
    const dollar = text.indexOf('$', i);
    if (dollar < 0) {
      out += text.slice(i);
      break;
    }
    out += text.slice(i, dollar);
    if (text.startsWith('$${', dollar)) {
      out += '${';
      i = dollar + 3;
      continue;
    }
    if (!text.startsWith('${', dollar)) {
      out += '$';
      i = dollar + 1;
      continue;
    }
    const close = text.indexOf('}', dollar + 2);
    if (close < 0) {
      problems.push({
        message: 'unterminated `${` in value',
        hint: 'close it with `}`, or write `$${` for a literal `${`',
      });
      out += text.slice(dollar);
      break;
    }
    const expression = text.slice(dollar + 2, close);
    const secret = expression.startsWith(SECRET_PREFIX);
    const body = secret ? expression.slice(SECRET_PREFIX.length) : expression;
    const separator = body.indexOf(':-');
    const name = separator < 0 ? body : body.slice(0, separator);
    const fallback = separator < 0 ? undefined : body.slice(separator + 2);
    i = close + 1;
    if (!VARIABLE_NAME.test(name)) {
      problems.push({
        message: `invalid variable reference \`\${${expression}}\``,
        // biome-ignore lint/suspicious/noTemplateCurlyInString: the hint shows the interpolation syntax
        hint: 'write `${NAME}`, `${NAME:-default}` or `${secret:NAME}`; `$${` is a literal `${`',
      });
      continue;
    }
    let value = env[name];
    if (fallback !== undefined && (value === undefined || value === '')) value = fallback;
    if (value === undefined) {
      const prefix = secret ? SECRET_PREFIX : '';
      problems.push({
        message: `environment variable \`${name}\` is not set`,
        hint: `set it, or give a default: \`\${${prefix}${name}:-value}\``,
      });
      continue;
    }
    if (secret && value !== '') secrets.push(value);
    out += value;
  }
  return { value: out, secrets, problems };
}

/**
 * Interpolates every scalar value of the document in place and records secrets on it.
 * Returns the paths whose value could not be interpolated (later passes stay quiet about them).
 */
export function interpolateDocument(pipeline: PipelineDocument, env: NodeJS.ProcessEnv): DocPath[] {
  const failed: DocPath[] = [];
  const visit = (node: Node | null | undefined, path: DocPath): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : undefined;
        if (key !== undefined) visit(pair.value as Node | null, [...path, key]);
      }
    } else if (isSeq(node)) {
      for (const [index, item] of node.items.entries()) visit(item as Node | null, [...path, index]);
    } else if (isScalar(node) && typeof node.value === 'string') {
      const result = interpolate(node.value, env);
      if (result.value !== node.value) node.value = result.value;
      pipeline.secrets.push(...result.secrets);
      if (result.secrets.length > 0) pipeline.secretPaths.add(JSON.stringify(path));
      if (result.problems.length > 0) failed.push(path);
      for (const problem of result.problems) {
        pipeline.report({ path, code: 'ETL_CFG_ENV', message: problem.message, hint: problem.hint });
      }
    }
  };
  visit(pipeline.doc.contents as Node | null, []);
  return failed;
}
