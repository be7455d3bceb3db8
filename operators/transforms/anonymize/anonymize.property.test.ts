/**
 * The promise of anonymize, through a real pipeline (file → parse → anonymize → file sinks, YAML loaded by the
 * real loader with the key from `${secret:…}`): whatever the lines, well-formed or broken, no original IP
 * address, user name, scrubbed parameter value, e-mail address, card or phone number, and not the key, is in
 * any byte any sink wrote, the dead letters included.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPipelinesFromString } from '../../../engine/config/load.ts';
import { runPipeline } from '../../../engine/runtime/run.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-anonymize-property-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const KEY = 'property-test-key-5e1d0c9b8a7f';

const alnum = (min: number, max: number) => fc.stringMatching(new RegExp(`^[A-Za-z0-9]{${min},${max}}$`));
// Host bits set, so that no truncation can give the address back.
const ipv4 = fc
  .tuple(fc.integer({ min: 1, max: 223 }), fc.nat(255), fc.nat(255), fc.integer({ min: 1, max: 254 }))
  .map((o) => o.join('.'));
const ipv6 = fc
  .tuple(
    fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 7, maxLength: 7 }),
    fc.integer({ min: 1, max: 0xffff }),
  )
  .map(([head, last]) => ipaddr.fromByteArray([...head, last].flatMap((g) => [g >> 8, g & 0xff])).toString())
  .filter((a) => !a.startsWith('::ffff:') && a.split(':').length > 3);
const ip = fc.oneof(ipv4, ipv6);

/** A 16-digit number passing the Luhn check. */
const card = fc.array(fc.nat(9), { minLength: 15, maxLength: 15 }).map((digits) => {
  const body = `4${digits.slice(1).join('')}`;
  let sum = 0;
  for (let i = 0; i < body.length; i++) {
    let d = Number(body[body.length - 1 - i]);
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return `${body}${(10 - (sum % 10)) % 10}`;
});

interface Secrets {
  readonly ips: string[];
  readonly values: string[];
}

const entry = fc.record({
  client: ip,
  via: ip,
  inPath: ip,
  user: fc.stringMatching(/^[a-z]{10,14}$/),
  token: alnum(12, 20),
  password: alnum(12, 20),
  mailbox: fc.stringMatching(/^[a-z]{10,14}$/),
  card,
  phone: fc.stringMatching(/^[1-9][0-9]{8}$/).map((d) => `+33${d}`),
  shape: fc.constantFrom('good', 'cut', 'junk'),
  // Bytes that are not UTF-8 in the line: parse and dead letters keep the line's original bytes (raw_base64).
  binary: fc.boolean(),
});

type Entry = typeof entry extends fc.Arbitrary<infer T> ? T : never;

function lineOf(e: Entry): { line: Buffer; secrets: Secrets } {
  const email = `${e.mailbox}@example.org`;
  const request = `GET /hosts/${e.inPath}/${email}?token=${e.token}&n=${e.card}&call=${encodeURIComponent(e.phone)}&page=2 HTTP/1.1`;
  const referrer = `https://ref.example/login?password=${e.password}&via=${e.via}`;
  const good = `${e.client} - ${e.user} [10/Oct/2025:13:55:36 +0200] "${request}" 200 512 "${referrer}" "Mozilla/5.0"`;
  const text =
    e.shape === 'good'
      ? good
      : e.shape === 'cut'
        ? good.slice(0, good.indexOf('" 200'))
        : `garbage ${e.client} token=${e.token} ${email} ${e.card} ${e.phone} ${e.via}`;
  const line = Buffer.concat([Buffer.from(text), Buffer.from(e.binary ? [0x20, 0xff, 0xfe] : [])]);
  const values = [e.token, e.password, e.mailbox, email, e.card, e.phone, encodeURIComponent(e.phone)];
  // A junk line has no user field to recognise (the README says so); the others do.
  if (e.shape !== 'junk') values.push(e.user);
  return { line, secrets: { ips: [e.client, e.via, e.inPath], values } };
}

/** Every address in `text`, normalized, so that another spelling of an original is found too. */
function addressesIn(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/[0-9A-Fa-f:.]{3,}/g)) {
    const candidate = m[0].replace(/^[:.]+|[.]+$/g, '');
    if (ipaddr.isValid(candidate) && (candidate.includes(':') || ipaddr.IPv4.isValidFourPartDecimal(candidate))) {
      found.push(ipaddr.process(candidate).toNormalizedString());
    }
  }
  return found;
}

let run = 0;
async function runThrough(lines: Buffer[], ipMode: string, userMode: string): Promise<string> {
  const at = join(dir, `run-${run++}`);
  mkdirSync(join(at, 'logs'), { recursive: true });
  writeFileSync(join(at, 'logs', 'access.log'), Buffer.concat(lines.flatMap((line) => [line, Buffer.from('\n')])));
  const yaml = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: anonymize-property }
spec:
  settings: { data_dir: ${join(at, '.etl')} }
  sources:
    logs: { type: file, paths: ['${join(at, 'logs', '*.log')}'] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
    anon:
      type: anonymize
      inputs: [parsed, parsed.dead_letter]
      ip: { mode: ${ipMode} }
      user: { mode: ${userMode} }
      key: \${secret:ANON_KEY}
      key_id: k1
  sinks:
    out: { type: file, inputs: [anon], path: '${join(at, 'out.jsonl')}', format: jsonl }
    rejects: { type: file, inputs: [anon.dead_letter], path: '${join(at, 'rejects.jsonl')}', format: jsonl }
`;
  const { pipelines, diagnostics } = await loadPipelinesFromString(yaml, join(at, 'p.yaml'), {
    env: { ANON_KEY: KEY },
  });
  expect(diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  const spec = pipelines[0];
  if (!spec) throw new Error('no pipeline');
  const result = await runPipeline(spec);
  expect(result.ok, result.error?.message).toBe(true);
  const read = (name: string) => {
    try {
      return readFileSync(join(at, name), 'utf8');
    } catch {
      return '';
    }
  };
  const written = `${read('out.jsonl')}\n${read('rejects.jsonl')}`;
  // Original bytes anywhere in the output count as written: decoded, they must hold nothing either.
  const bytes = [...written.matchAll(/"(?:raw|message)_base64":"([A-Za-z0-9+/=]*)"/g)].map((m) =>
    Buffer.from(m[1] as string, 'base64').toString('latin1'),
  );
  return [written, ...bytes].join('\n');
}

describe('anonymize through a pipeline', () => {
  it('passes the dead letters it reads on without rejecting them again, also with on_error: fail', async () => {
    const at = join(dir, 'forwarded');
    mkdirSync(join(at, 'logs'), { recursive: true });
    const good = '192.0.2.7 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "curl/8"';
    writeFileSync(join(at, 'logs', 'a.log'), `${good}\nnot a line from 192.0.2.8\n`);
    const yaml = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: anonymize-forward }
spec:
  settings: { data_dir: ${join(at, '.etl')} }
  sources:
    logs: { type: file, paths: ['${join(at, 'logs', '*.log')}'] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
    anon: { type: anonymize, inputs: [parsed, parsed.dead_letter], on_error: fail }
  sinks:
    out: { type: file, inputs: [anon], path: '${join(at, 'out.jsonl')}', format: jsonl }
    rejects: { type: file, inputs: [anon.dead_letter], path: '${join(at, 'rejects.jsonl')}', format: jsonl }
`;
    const { pipelines } = await loadPipelinesFromString(yaml, join(at, 'p.yaml'), { env: {} });
    const result = await runPipeline(pipelines[0] as NonNullable<(typeof pipelines)[0]>);
    expect(result.ok, result.error?.message).toBe(true);
    expect(result.stats.rejected).toBe(1);
    const [letter] = readFileSync(join(at, 'rejects.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(letter).toMatchObject({ stage: 'parsed', raw: 'not a line from 192.0.2.0', origin: { line: 2 } });
  });

  it('lets no original IP, user, scrubbed value or the key reach a sink, dead letters included', async () => {
    let rejected = 0;
    let stored = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(entry, { minLength: 1, maxLength: 12 }),
        fc.constantFrom('truncate', 'pseudonymize', 'drop'),
        fc.constantFrom('drop', 'pseudonymize'),
        async (entries, ipMode, userMode) => {
          const made = entries.map(lineOf);
          const written = await runThrough(
            made.map((m) => m.line),
            ipMode,
            userMode,
          );
          rejected += (written.match(/"stage":"parsed"/g) ?? []).length;
          stored += (written.match(/"status":200/g) ?? []).length;
          expect(written).not.toContain(KEY);
          const originals = new Set(
            made.flatMap((m) => m.secrets.ips.map((a) => ipaddr.process(a).toNormalizedString())),
          );
          for (const address of addressesIn(written)) expect(originals.has(address), address).toBe(false);
          for (const m of made) {
            for (const address of m.secrets.ips) {
              const bounded = new RegExp(`(?<![0-9A-Fa-f:.])${address.replaceAll('.', '\\.')}(?![0-9A-Fa-f:]|\\.\\d)`);
              expect(written, address).not.toMatch(bounded);
            }
            for (const value of m.secrets.values) expect(written, value).not.toContain(value);
          }
        },
      ),
      { numRuns: 12 },
    );
    // Both ways out were exercised.
    expect(rejected).toBeGreaterThan(0);
    expect(stored).toBeGreaterThan(0);
  }, 120_000);
});
