import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createLogger, type LoggerOptions, parseLogLevel, secretForms } from '../../engine/telemetry/logger.ts';

const NOW = Date.parse('2026-11-28T12:00:00.000Z');

function capture(options: Partial<LoggerOptions> = {}) {
  const chunks: string[] = [];
  const logger = createLogger({
    format: 'json',
    env: {},
    now: () => NOW,
    ...options,
    stream: { write: (chunk: string) => chunks.push(chunk) > 0 },
  });
  return { logger, lines: () => chunks.join('').split('\n').slice(0, -1), chunks };
}

function events(lines: string[]): Record<string, unknown>[] {
  return lines.map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('json format', () => {
  it('writes one object per line: time, level, msg, bindings and fields; fixed keys cannot be overwritten', () => {
    const { logger, lines, chunks } = capture({ bindings: { pipeline: 'web' } });
    logger
      .child({ stage: 'store' })
      .warn('retrying', { attempt: 2, level: 'fake', msg: 'fake', error: new Error('reset') });
    logger.info('plain');
    expect(chunks).toHaveLength(2);
    expect(events(lines())).toEqual([
      {
        time: '2026-11-28T12:00:00.000Z',
        level: 'warn',
        msg: 'retrying',
        pipeline: 'web',
        stage: 'store',
        attempt: 2,
        error: { name: 'Error', message: 'reset' },
      },
      { time: '2026-11-28T12:00:00.000Z', level: 'info', msg: 'plain', pipeline: 'web' },
    ]);
  });

  it('keeps an error code, writes bigints and dates, and survives circular fields', () => {
    const { logger, lines } = capture();
    const circular: Record<string, unknown> = { a: 1 };
    circular.self = circular;
    const gone = Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' });
    logger.error('boom', { circular, gone, big: 10n, when: new Date(NOW), skipped: undefined });
    const [event] = events(lines());
    expect(event).toMatchObject({
      level: 'error',
      msg: 'boom',
      circular: { a: 1, self: '[Circular]' },
      gone: { name: 'Error', message: 'ENOENT: no such file', code: 'ENOENT' },
      big: 10,
      when: '2026-11-28T12:00:00.000Z',
    });
    expect(event).not.toHaveProperty('skipped');
  });
});

describe('pretty format', () => {
  it('writes one line per event: time, level, [pipeline/stage], message and fields', () => {
    const { logger, lines } = capture({ format: 'pretty' });
    const stage = logger.child({ pipeline: 'web' }).child({ stage: 'parse' });
    stage.info('batch done', { records: 3, file: 'access log.1' });
    logger.error('cannot open', { error: new Error('ENOENT: no such file') });
    logger.child({ pipeline: 'web', attempt: 2 }).info('retrying');
    expect(lines()).toEqual([
      '[2026-11-28T12:00:00.000Z] INFO: [web/parse] batch done {"records":3,"file":"access log.1"}',
      '[2026-11-28T12:00:00.000Z] ERROR: cannot open {"error":{"name":"Error","message":"ENOENT: no such file"}}',
      '[2026-11-28T12:00:00.000Z] INFO: [web] retrying {"attempt":2}',
    ]);
  });

  it('colours the level only when asked (a terminal)', () => {
    const plain = capture({ format: 'pretty' });
    plain.logger.warn('w');
    expect(plain.lines()[0]).not.toContain('\u001b[');
    const coloured = capture({ format: 'pretty', colorize: true });
    coloured.logger.warn('w');
    expect(coloured.lines()[0]).toContain('\u001b[');
  });
});

describe('redaction', () => {
  it('hides secret values and URL passwords on every line, in both formats', () => {
    for (const format of ['pretty', 'json'] as const) {
      const { logger, lines } = capture({ format, secrets: ['s3cr3t-token', 'pa"ss'] });
      logger
        .child({ pipeline: 'web', target: 'redis://:hunter2@127.0.0.1:6379' })
        .info('connecting with s3cr3t-token', {
          url: 'postgres://etl:pa"ss@127.0.0.1:5432/test',
          other: 'https://user:topsecret@example.com/x',
        });
      const [line = ''] = lines();
      for (const secret of ['s3cr3t-token', 'hunter2', 'pa"ss', 'pa\\"ss', 'topsecret']) {
        expect(line, `${format} leaks ${secret}`).not.toContain(secret);
      }
      expect(line).toContain('connecting with ***');
      expect(line).toContain('https://user:***@example.com/x');
      expect(line).toContain('redis://:***@127.0.0.1:6379');
    }
  });

  it('never leaves a secret in a line, whatever the secret and the text around it', () => {
    const secret = fc.string({ minLength: 4, maxLength: 12 }).filter((s) => !s.includes('*'));
    fc.assert(
      fc.property(
        secret,
        fc.array(fc.string({ maxLength: 8 }), { maxLength: 5 }),
        fc.constantFrom('pretty' as const, 'json' as const),
        (s, pieces, format) => {
          const { logger, chunks } = capture({ format, secrets: [s] });
          logger.info(pieces.join(s), { value: s, url: `postgres://u:${encodeURIComponent(s)}@h/db` });
          const output = chunks.join('');
          expect(output).not.toContain(s);
          expect(output).not.toContain(encodeURIComponent(s));
          if (format === 'json') expect(output).not.toContain(JSON.stringify(s).slice(1, -1));
        },
      ),
    );
  });

  it('knows the raw, JSON-escaped and percent-encoded form of each secret', () => {
    expect(secretForms(['', 'plain', 'p@ss "x"'])).toEqual(['plain', 'p@ss "x"', 'p@ss \\"x\\"', 'p%40ss%20%22x%22']);
  });
});

describe('levels', () => {
  it('drops what is below the level', () => {
    const { logger, lines } = capture({ level: 'warn' });
    logger.debug('d');
    logger.info('i');
    logger.child({ stage: 'x' }).info('i');
    logger.warn('w');
    logger.error('e');
    expect(events(lines()).map((e) => `${String(e.level)} ${String(e.msg)}`)).toEqual(['warn w', 'error e']);
  });

  it('takes ETL_LOG_LEVEL when the caller sets none, and the caller wins over it', () => {
    const fromEnv = capture({ env: { ETL_LOG_LEVEL: 'DEBUG' } });
    fromEnv.logger.debug('shown');
    expect(fromEnv.lines()).toHaveLength(1);
    const explicit = capture({ level: 'error', env: { ETL_LOG_LEVEL: 'debug' } });
    explicit.logger.warn('hidden');
    expect(explicit.lines()).toHaveLength(0);
    // The CLI passes ETL_LOG_LEVEL on as typed.
    const typed = capture({ level: 'WARN' as 'warn', env: {} });
    typed.logger.info('hidden');
    typed.logger.warn('shown');
    expect(typed.lines()).toHaveLength(1);
    const invalid = capture({ level: 'verbose' as 'info', env: { ETL_LOG_LEVEL: 'verbose' } });
    invalid.logger.debug('hidden');
    invalid.logger.info('shown');
    expect(invalid.lines()).toHaveLength(1);
  });

  it('parses level names', () => {
    expect(parseLogLevel(' Warn ')).toBe('warn');
    expect(parseLogLevel('trace')).toBeUndefined();
    expect(parseLogLevel('constructor')).toBeUndefined();
    expect(parseLogLevel(undefined)).toBeUndefined();
  });
});
