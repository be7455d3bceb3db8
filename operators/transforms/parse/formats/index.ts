/** Turns a `format` option into a compiled parser. */
import type { TrustedProxies } from '../forwarded.ts';
import type { AccessRecord } from '../../../shared/log-records.ts';
import { apacheTokens } from './apache.ts';
import { BUILTIN_TEMPLATES, type BuiltinTemplateName, ERROR_FORMATS } from './builtin.ts';
import { ErrorLogFormat, type ErrorLogFormatName } from './error-log.ts';
import type { EscapeMode } from './fields.ts';
import { JsonFormat, type JsonTarget } from './json.ts';
import { nginxTokens } from './nginx.ts';
import { formatError, type LineParser, TemplateFormat } from './template.ts';

export type FormatSpec =
  | string
  | { readonly apache: string }
  | { readonly nginx: string; readonly escape?: EscapeMode }
  | { readonly json: { readonly fields?: Readonly<Partial<Record<JsonTarget, string>>> } };

export interface CompileContext {
  readonly timezone: string;
  readonly customVariables: readonly string[];
  /** `trusted_proxies`; none when absent. */
  readonly trusted?: TrustedProxies;
}

export type AccessParser = LineParser<AccessRecord>;

export function isErrorLogFormat(spec: FormatSpec): spec is ErrorLogFormatName {
  return typeof spec === 'string' && (ERROR_FORMATS as readonly string[]).includes(spec);
}

export function compileErrorLog(name: ErrorLogFormatName, ctx: CompileContext): ErrorLogFormat {
  return new ErrorLogFormat(name, ctx.timezone);
}

/** Compiles an access-log format; a bad format string throws EtlError ETL_CFG_INVALID with the column. */
export function compileAccess(spec: FormatSpec, ctx: CompileContext): AccessParser {
  if (typeof spec === 'string') {
    if (spec === 'json') return new JsonFormat('json', {}, ctx.timezone, ctx.trusted);
    const builtin = (BUILTIN_TEMPLATES as Record<string, (typeof BUILTIN_TEMPLATES)[BuiltinTemplateName]>)[spec];
    if (builtin === undefined) throw formatError(`unknown access log format \`${spec}\``);
    return compileTemplate(
      spec,
      builtin.dialect === 'apache' ? { apache: builtin.format } : { nginx: builtin.format },
      ctx,
    );
  }
  if ('json' in spec) return new JsonFormat('json', spec.json.fields ?? {}, ctx.timezone, ctx.trusted);
  return compileTemplate('nginx' in spec ? 'nginx format' : 'apache format', spec, ctx);
}

export function compileTemplate(
  name: string,
  spec: { readonly apache: string } | { readonly nginx: string; readonly escape?: EscapeMode },
  ctx: CompileContext,
): TemplateFormat {
  if ('apache' in spec) {
    return new TemplateFormat(apacheTokens(spec.apache), {
      name,
      dialect: 'apache',
      escape: 'default',
      timezone: ctx.timezone,
      trusted: ctx.trusted,
    });
  }
  const pasted = nginxTokens(spec.nginx, ctx.customVariables);
  return new TemplateFormat(pasted.tokens, {
    name,
    dialect: 'nginx',
    escape: spec.escape ?? pasted.escape ?? 'default',
    timezone: ctx.timezone,
    trusted: ctx.trusted,
  });
}

/** A short name for logs and metrics. */
export function formatLabel(spec: FormatSpec): string {
  if (typeof spec === 'string') return spec;
  return 'apache' in spec ? 'apache' : 'nginx' in spec ? 'nginx' : 'json';
}
