import type { OptionProblem } from '../../../engine/operator.ts';
import { defineTransform } from '../../../engine/operator.ts';
import { errorMessage } from '../../../engine/errors.ts';
import { compileAccess, type FormatSpec, isErrorLogFormat } from './formats/index.ts';
import { ParseTransform } from './parse.ts';
import { type ParseOptions, schema } from './schema.ts';
import { isKnownZone } from './time/clock.ts';

const defaults = {
  candidates: [...schema.properties.candidates.default],
  sample_lines: schema.properties.sample_lines.default,
  custom_variables: [],
  timezone: schema.properties.timezone.default,
  max_line_bytes: schema.properties.max_line_bytes.default,
};

export default defineTransform<typeof schema, ParseOptions>({
  type: 'parse',
  stability: 'beta',
  summary: 'Parse Apache, nginx and JSON access logs (or error logs) into normalized records',
  schema,
  accepts: ['raw'],
  outputs: { default: 'access' },
  outputsFor(options) {
    return { default: isErrorLogFormat(options.format as FormatSpec) ? 'error_log' : 'access' };
  },
  examples: [
    { ...defaults, format: 'auto' },
    { ...defaults, format: 'combined' },
    { ...defaults, format: { apache: '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D' } },
    {
      ...defaults,
      format: {
        nginx:
          '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" ' +
          '"$http_user_agent" $request_time $upstream_response_time $upstream_addr',
      },
    },
    { ...defaults, format: { json: { fields: { client_ip: 'ip', timestamp: 'ts', request_time_ms: 'duration' } } } },
    { ...defaults, format: 'error_log', timezone: 'Europe/Paris' },
  ],
  validate(options) {
    const problems: OptionProblem[] = [];
    if (!isKnownZone(options.timezone)) {
      problems.push({
        path: ['timezone'],
        message: `unknown time zone \`${options.timezone}\``,
        hint: 'use an IANA name such as Europe/Paris',
      });
    }
    const compile = { timezone: 'UTC', customVariables: options.custom_variables };
    const check = (spec: FormatSpec, path: (string | number)[]) => {
      if (spec === 'auto' || isErrorLogFormat(spec)) return;
      try {
        compileAccess(spec, compile);
      } catch (error) {
        const key = typeof spec === 'string' ? [] : 'apache' in spec ? ['apache'] : 'nginx' in spec ? ['nginx'] : [];
        problems.push({ path: [...path, ...key], message: errorMessage(error) });
      }
    };
    check(options.format as FormatSpec, ['format']);
    if (options.format === 'auto') {
      (options.candidates as readonly FormatSpec[]).forEach((spec, i) => {
        if (isErrorLogFormat(spec)) {
          problems.push({
            path: ['candidates', i],
            message: `${spec} is an error-log format; auto detects access logs only`,
          });
        } else check(spec, ['candidates', i]);
      });
    }
    return problems;
  },
  create(options, ctx) {
    return new ParseTransform(options, ctx);
  },
});
