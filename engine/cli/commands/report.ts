/**
 * `etl report --pipeline <file>… [--from] [--to] --out report.html`: one self-contained HTML page of charts and
 * tables read from the databases the pipelines load into (engine/report/). Sections whose tables none of the
 * pipelines has are named at the end, with the pipeline that would fill them.
 */
import { writeFile } from 'node:fs/promises';
import { loadPipelines } from '../../config/load.ts';
import { formatDiagnostic, hasErrors } from '../../diagnostics.ts';
import { errorMessage } from '../../errors.ts';
import { redact } from '../../redact.ts';
import { renderReport } from '../../report/html.ts';
import { buildReport, type Period } from '../../report/sections.ts';
import { openSources } from '../../report/sources.ts';

export interface ReportOptions {
  pipelines: readonly string[];
  from?: string;
  to?: string;
  url?: string;
  /** The HTML file to write. */
  file: string;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  env?: NodeJS.ProcessEnv;
  /** The time the report says it was generated at; default now. */
  now?: Date;
}

function parseTime(flag: string, text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const time = Date.parse(text);
  if (Number.isNaN(time))
    throw new Error(`${flag} ${JSON.stringify(text)} is not a date (ISO 8601, e.g. 2026-12-01T00:00Z)`);
  return new Date(time);
}

export async function runReport(options: ReportOptions): Promise<number> {
  const { err } = options;
  const env = options.env ?? process.env;
  let period: Period;
  try {
    const from = parseTime('--from', options.from);
    const to = parseTime('--to', options.to);
    if (from && to && from >= to) throw new Error('--from must be before --to');
    period = { ...(from ? { from } : {}), ...(to ? { to } : {}) };
  } catch (error) {
    err.write(`etl report: ${errorMessage(error)}\n`);
    return 2;
  }
  const { pipelines, diagnostics } = await loadPipelines(options.pipelines, { env });
  if (hasErrors(diagnostics)) {
    err.write(`etl report: cannot read the pipelines:\n${diagnostics.map(formatDiagnostic).join('\n')}\n`);
    return 1;
  }
  const secrets = pipelines.flatMap((p) => p.secrets);
  let sources: Awaited<ReturnType<typeof openSources>>;
  try {
    sources = await openSources(pipelines, { ...(options.url ? { url: options.url } : {}), env });
  } catch (error) {
    err.write(`etl report: ${redact(errorMessage(error), secrets)}\n`);
    return 1;
  }
  try {
    if (sources.tables.length === 0) {
      err.write(
        `etl report: none of the pipelines' tables exists yet (${sources.absent.join(', ') || 'no postgres sink'}): ` +
          'run `etl apply` on them first\n',
      );
      return 1;
    }
    const report = await buildReport(sources, {
      pipelines: pipelines.map((p) => p.name),
      period,
      now: options.now ?? new Date(),
    });
    const html = await renderReport(report);
    await writeFile(options.file, html);
    options.out.write(
      `wrote ${options.file}: ${report.sections.length} sections` +
        (report.missing.length > 0 ? `, ${report.missing.length} left out (see the end of the page)` : '') +
        '\n',
    );
    const requests = report.totals.find((t) => t.label === 'Requests');
    if (requests?.value === 0 && (options.from !== undefined || options.to !== undefined)) {
      err.write('etl report: no request falls between --from and --to: the traffic sections are empty\n');
    }
    return 0;
  } catch (error) {
    err.write(`etl report: ${redact(errorMessage(error), secrets)}\n`);
    return 1;
  } finally {
    await sources.close();
  }
}
