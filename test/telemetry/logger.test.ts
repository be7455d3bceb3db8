import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createLogger, type LoggerOptions, parseLogLevel, secretForms } from '../../engine/telemetry/logger.ts';

const NOW = Date.parse('2026-11-28T12:00:00.000Z');

function capture(options: Partial<LoggerOptions> = {}) {
  const chunks: string[] = [];
  const logger = createLogger({
    format: 'text',
    env: {},
    now: () => NOW,
    ...options,
    stream: { write: (chunk: string) => chunks.push(chunk) > 0 },
  });
  return { logger, lines: () => chunks.join('').split('\n').slice(0, -1), chunks };
}

describe('text format', () => {
  it('prints time, padded level, [pipeline/stage], message and fields', () => {
    const { logger, lines } = capture();
    const stage = logger.child({ pipeline: 'web' }).child({ stage: 'parse' });
    stage.info('batch done', { records: 3, file: 'access log.1', ok: true, skipped: undefined });
    stage.warn('slow sink', { delay_ms: 1500.5 });
    logger.error('cannot open', { error: new Error('ENOENT: no such file') });
    logger.child({ pipeline: 'web', attempt: 2 }).debug('hidden at info');
    logger.child({ pipeline: 'web', attempt: 2 }).info('retrying');
    expect(lines()).toEqual([
      '2026-11-28T12:00:00.000Z INFO  [web/parse] batch done records=3 file="access log.1" ok=true',
      '2026-11-28T12:00:00.000Z WARN  [web/parse] slow sink delay_ms=1500.5',
      '2026-11-28T12:00:00.000Z ERROR cannot open error="ENOENT: no such file"',
      '2026-11-28T12:00:00.000Z INFO  [web] retrying attempt=2',
    ]);
  });

  it('prints objects as JSON and survives circular ones', () => {
    const { logger, lines } = capture();
    const circular: Record<string, unknown> = { a: 1 };
    circular.self = circular;
    logger.info('values', { list: [1, 2], when: new Date(NOW), n: null, big: 10n });
    logger.info('circular', { circular });
    expect(lines()).toEqual([
      '2026-11-28T12:00:00.000Z INFO  values list=[1,2] when=2026-11-28T12:00:00.000Z n=null big=10',
      '2026-11-28T12:00:00.000Z INFO  circular circular="[object Object]"',
    ]);
  });
});

describe('json format', () => {
  it('writes one object per line with bindings and fields; fixed keys cannot be overwritten', () => {
    const { logger, lines, chunks } = capture({ format: 'json', bindings: { pipeline: 'web' } });
    logger.child({ stage: 'store' }).warn('retrying', { attempt: 2, level: 'fake', error: new Error('reset') });
    expect(chunks).toHaveLength(1);
    const [line] = lines();
    const event = JSON.parse(line ?? '') as Record<string, unknown>;
    expect(event).toEqual({
      time: '2026-11-28T12:00:00.000Z',
      level: 'warn',
      msg: 'retrying',
      pipeline: 'web',
      stage: 'store',
      attempt: 2,
      error: { name: 'Error', message: 'reset' },
    });
    expect(Object.keys(event).slice(0, 3)).toEqual(['time', 'level', 'msg']);
  });

  it('still writes the line when fields cannot be serialised', () => {
    const { logger, lines } = capture({ format: 'json' });
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    logger.error('boom', { circular });
    expect(JSON.parse(lines()[0] ?? '')).toMatchObject({ level: 'error', msg: 'boom', log_error: expect.any(String) });
  });
});

describe('redaction', () => {
  it('hides secret values and URL passwords on every line, in both formats', () => {
    for (const format of ['text', 'json'] as const) {
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
        fc.constantFrom('text' as const, 'json' as const),
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
    logger.warn('w');
    logger.error('e');
    expect(lines().map((l) => l.slice(25))).toEqual(['WARN  w', 'ERROR e']);
  });

  it('takes ETL_LOG_LEVEL when the caller sets none, and the caller wins over it', () => {
    const fromEnv = capture({ env: { ETL_LOG_LEVEL: 'DEBUG' } });
    fromEnv.logger.debug('shown');
    expect(fromEnv.lines()).toHaveLength(1);
    const explicit = capture({ level: 'error', env: { ETL_LOG_LEVEL: 'debug' } });
    explicit.logger.warn('hidden');
    expect(explicit.lines()).toHaveLength(0);
    const invalid = capture({ env: { ETL_LOG_LEVEL: 'verbose' } });
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
