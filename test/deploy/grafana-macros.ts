/**
 * Grafana's PostgreSQL macros, expanded as Grafana 11 does (pkg/tsdb/grafana-postgresql-datasource/macros.go),
 * so that a dashboard's SQL can run on a real server in a test. Dashboard variables are substituted first, as
 * Grafana does. An unknown macro is an error, as in Grafana.
 */
export interface TimeRange {
  readonly from: Date;
  readonly to: Date;
}

const MACRO = /\$(__[A-Za-z0-9_]+)\(([^)]*)\)/g;

/** `1m`, `30s`, `1h` → seconds. */
function intervalSeconds(text: string): number {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(text.trim().replace(/^'|'$/g, ''));
  if (match === null) throw new Error(`cannot parse interval ${text}`);
  const scale = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400 }[match[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(match[1]) * scale;
}

export function expandGrafanaSql(sql: string, range: TimeRange, variables: Record<string, string>): string {
  let text = sql;
  for (const [name, value] of Object.entries(variables)) text = text.replaceAll(`$${name}`, value);
  const iso = (date: Date) => date.toISOString();
  return text.replace(MACRO, (_whole, name: string, rawArgs: string) => {
    const args = rawArgs.split(',').map((arg) => arg.trim());
    const group = () => {
      const seconds = intervalSeconds(args[1] ?? '');
      return `floor(extract(epoch from ${args[0]})/${seconds})*${seconds}`;
    };
    switch (name) {
      case '__timeFilter':
        return `${args[0]} BETWEEN '${iso(range.from)}' AND '${iso(range.to)}'`;
      case '__timeFrom':
        return `'${iso(range.from)}'`;
      case '__timeTo':
        return `'${iso(range.to)}'`;
      case '__time':
        return `${args[0]} AS "time"`;
      case '__timeGroup':
        return group();
      case '__timeGroupAlias':
        return `${group()} AS "time"`;
      default:
        throw new Error(`unknown macro $${name}`);
    }
  });
}
