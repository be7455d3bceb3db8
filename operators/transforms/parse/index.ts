import type { OptionProblem } from '../../../engine/operator.ts';
import { defineTransform } from '../../../engine/operator.ts';
import { errorMessage } from '../../../engine/errors.ts';
import type { RecordKind } from '../../../engine/record.ts';
import type { RecordSchema } from '../../../engine/record-schema.ts';
import { accessRecordSchema, errorLogRecordSchema } from '../../shared/log-records.ts';
import { compileAccess, type FormatSpec, isErrorLogFormat } from './formats/index.ts';
import { parseCidr } from './forwarded.ts';
import { ERROR_LOG_PORT, ParseTransform } from './parse.ts';
import { type ParseOptions, schema } from './schema.ts';
import { isKnownZone } from './time/clock.ts';

const defaults = {
  candidates: [...schema.properties.candidates.default],
  sample_lines: schema.properties.sample_lines.default,
  custom_variables: [],
  trusted_proxies: [],
  timezone: schema.properties.timezone.default,
  max_line_bytes: schema.properties.max_line_bytes.default,
};

function portKinds(options: ParseOptions): Readonly<Record<string, RecordKind>> {
  const format = options.format as FormatSpec;
  if (format === 'auto') {
    const errorLogs = (options.candidates as readonly FormatSpec[]).some(isErrorLogFormat);
    return errorLogs ? { default: 'access', [ERROR_LOG_PORT]: 'error_log' } : { default: 'access' };
  }
  return { default: isErrorLogFormat(format) ? 'error_log' : 'access' };
}

export default defineTransform<typeof schema, ParseOptions>({
  type: 'parse',
  stability: 'beta',
  summary: 'Parse Apache, nginx and JSON access logs (or error logs) into normalized records',
  schema,
  accepts: ['raw'],
  outputs: { default: 'access' },
  outputsFor: portKinds,
  // Records are built anew from the line: nothing of the input record but its origin is kept.
  outputSchemas(options): Readonly<Record<string, RecordSchema>> {
    const schemas: Record<string, RecordSchema> = {};
    for (const [port, kind] of Object.entries(portKinds(options))) {
      schemas[port] = kind === 'error_log' ? errorLogRecordSchema : accessRecordSchema;
    }
    return schemas;
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
    { ...defaults, format: 'auto', trusted_proxies: ['10.0.0.0/8', '2001:db8::/32'] },
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
      // A named format is one the schema's enum admitted: built in, known to compile. Only templates are compiled.
      if (typeof spec === 'string') return;
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
        check(spec, ['candidates', i]);
      });
    }
    options.trusted_proxies.forEach((cidr, i) => {
      if (parseCidr(cidr) === undefined) {
        problems.push({
          path: ['trusted_proxies', i],
          message: `\`${cidr}\` is not an IPv4 or IPv6 address or CIDR block`,
          hint: 'write an address (`192.0.2.1`) or a block (`10.0.0.0/8`, `2001:db8::/32`)',
        });
      }
    });
    return problems;
  },
  // Each line is parsed on its own. With `format: auto` each instance samples the first lines of a file it sees:
  // on worker threads every worker decides per file from the lines it gets (the same format for a file of one format).
  stateless: true,
  create(options, ctx) {
    return new ParseTransform(options, ctx);
  },
});
