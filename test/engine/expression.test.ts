import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Condition, compileCondition, compileExpression } from '../../engine/expression.ts';
import type { RecordSchema } from '../../engine/record-schema.ts';
import { accessRecordSchema } from '../../operators/shared/log-records.ts';

const access = accessRecordSchema as RecordSchema;

function condition(source: string, schema: RecordSchema = access): Condition {
  const compiled = compileCondition(source, schema);
  if ('problem' in compiled) throw new Error(`${compiled.problem.message} at ${compiled.problem.offset}`);
  return compiled.condition;
}

const record = {
  status: 503,
  method: 'GET',
  path: '/a',
  bytes: 10,
  request_time_ms: 12.5,
  user: null,
  extra: { k: 'v' },
};

describe('compileCondition against a closed schema', () => {
  it('evaluates typed fields: integers as int, numbers as double, maps and membership', () => {
    expect(condition('record.status == 503 && record.method in ["GET", "HEAD"]').evaluate(record)).toEqual({
      ok: true,
      value: true,
    });
    expect(condition('record.request_time_ms > 10.0 && record.bytes >= 0').evaluate(record)).toEqual({
      ok: true,
      value: true,
    });
    expect(condition('record.extra["k"] == "v" && record.path.startsWith("/")').evaluate(record)).toEqual({
      ok: true,
      value: true,
    });
    expect(condition('record.status < 500').evaluate(record)).toEqual({ ok: true, value: false });
  });

  it('reads only the fields the expression names', () => {
    expect(condition('record.status == 1 || has(record.user)').fields).toEqual(['status', 'user']);
  });

  it('treats null as absent: has() tells, reading it is an error result, never a throw', () => {
    expect(condition('has(record.user)').evaluate(record)).toEqual({ ok: true, value: false });
    const result = condition('record.user == "x"').evaluate(record);
    expect(result).toEqual({ ok: false, error: '`user` is null or absent (test it with has(record.user))' });
  });

  it('tells a missing map key from a null field', () => {
    expect(condition('record.extra["nope"] == "v"').evaluate(record)).toEqual({
      ok: false,
      error: 'no key `nope` (test it with has() or `in`)',
    });
  });

  it('refuses a misspelt field with its offset and the nearest name', () => {
    const compiled = compileCondition('record.status >= 500 && record.mehtod == "GET"', access);
    expect(compiled).toEqual({
      problem: { message: 'unknown field `mehtod` — did you mean `method`?', offset: 31, unknownField: 'mehtod' },
    });
  });

  it('refuses type errors, syntax errors and non-boolean results', () => {
    const typeError = compileCondition('record.method > 5', access);
    expect('problem' in typeError && typeError.problem.message).toMatch(/no such overload: string > int/);
    const syntax = compileCondition('record.status ==', access);
    expect('problem' in syntax && syntax.problem.offset).toBe(16);
    const notBool = compileCondition('record.status + 1', access);
    expect('problem' in notBool && notBool.problem.message).toBe(
      'a condition must give true or false; this one gives a int',
    );
    const bare = compileCondition('status == 200', access);
    expect('problem' in bare && bare.problem.message).toMatch(/unknown variable `status`.*record\.status/);
  });

  it('an integer field holding a fraction is an error result', () => {
    expect(condition('record.status == 1').evaluate({ status: 1.5 })).toEqual({
      ok: false,
      error: '1.5 is not an integer',
    });
  });
});

describe('compileCondition against an open schema', () => {
  it('reads any field as dyn, checked when it runs', () => {
    const c = condition('record.anything == 3 && record.name == "x"', { type: 'object' });
    expect(c.evaluate({ anything: 3, name: 'x' })).toEqual({ ok: true, value: true });
    expect(c.evaluate({ name: 'x' }).ok).toBe(false);
  });
});

describe('evaluation never throws', () => {
  const conditions = [
    condition('record.status >= 500 && record.method == "GET"'),
    condition('record.path.matches("^/api/") || size(record.extra) > 2'),
    condition('has(record.user) ? record.user.size() > 3 : record.bytes > 100'),
    condition('record.anything == 1 || record.x.y > 2', { type: 'object' }),
  ];
  it('on arbitrary records', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.constantFrom('status', 'method', 'path', 'extra', 'user', 'bytes', 'x'), fc.anything()),
        (r) => {
          for (const c of conditions) {
            const out = c.evaluate(r);
            expect(typeof out.ok).toBe('boolean');
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('compileExpression', () => {
  it('gives the checked type and the value as CEL makes it', () => {
    const made = compileExpression('record.status / 100', access);
    if ('problem' in made) throw new Error(made.problem.message);
    expect(made.expression.type).toBe('int');
    expect(made.expression.fields).toEqual(['status']);
    expect(made.expression.evaluate(record)).toEqual({ ok: true, value: 5n });
    const text = compileExpression('record.method + " " + record.path', access);
    if ('problem' in text) throw new Error(text.problem.message);
    expect(text.expression.type).toBe('string');
    expect(text.expression.evaluate(record)).toEqual({ ok: true, value: 'GET /a' });
  });

  it('reports a misspelt field at its offset, and an error result for a null field', () => {
    const made = compileExpression('1 + record.statsu', access);
    expect('problem' in made && made.problem).toMatchObject({ offset: 11, unknownField: 'statsu' });
    const user = compileExpression('record.user + "!"', access);
    if ('problem' in user) throw new Error(user.problem.message);
    expect(user.expression.evaluate(record)).toEqual({
      ok: false,
      error: '`user` is null or absent (test it with has(record.user))',
    });
  });
});
