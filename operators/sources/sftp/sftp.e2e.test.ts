/**
 * SFTP → file sink through the CLI, against a real OpenSSH server: a run stopped (SIGINT) or killed (SIGKILL)
 * and run again leaves every remote line in the output exactly once.
 */
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etl, startEtl } from '../../../test/support/cli.ts';
import { until } from '../../../test/support/until.ts';
import { type Sshd, sshdMissing, startSshd } from './test-sshd.ts';

const missing = sshdMissing();

function lines(prefix: string, count: number, from = 0): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix} ${from + i}`);
}

describe.skipIf(missing !== undefined)(
  `etl apply with an sftp source${missing ? ` (skipped: ${missing})` : ''}`,
  () => {
    let sshd: Sshd;
    let work: string;

    beforeAll(async () => {
      sshd = await startSshd();
      work = mkdtempSync(join(tmpdir(), 'etl-sftp-e2e-'));
    });
    afterAll(async () => {
      await sshd?.stop();
      if (work) rmSync(work, { recursive: true, force: true });
    });

    function pipeline(name: string, remote: string, follow: boolean): string {
      const dir = join(work, name);
      mkdirSync(dir, { recursive: true });
      const path = join(dir, `pipeline-${follow ? 'follow' : 'once'}.yaml`);
      writeFileSync(
        path,
        `apiVersion: etl/v1
kind: Pipeline
metadata: { name: ${name} }
spec:
  settings: { data_dir: ${join(dir, '.etl')}, checkpoint_interval_seconds: 0.2, batch_max_records: 50 }
  sources:
    remote:
      type: sftp
      host: 127.0.0.1
      port: ${sshd.port}
      username: ${sshd.user}
      private_key_path: ${sshd.userKeyPath}
      host_key_fingerprint: "${sshd.hostFingerprint}"
      directory: ${remote}
      pattern: "*.log*"
      follow: ${follow}
      poll_interval_seconds: 0.2
  sinks:
    out: { type: file, inputs: [remote], path: ${join(dir, 'out.jsonl')} }
`,
      );
      return path;
    }

    function output(name: string): string[] {
      const path = join(work, name, 'out.jsonl');
      if (!existsSync(path)) return [];
      return readFileSync(path, 'utf8')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => (JSON.parse(line) as { message: string }).message);
    }

    function remoteDir(name: string): string {
      const dir = join(sshd.root, name);
      mkdirSync(dir, { recursive: true });
      return dir;
    }

    it('stops on SIGINT while following, and the next run reads only what came since', async () => {
      const remote = remoteDir('stop');
      writeFileSync(join(remote, 'access.log'), `${lines('a', 400).join('\n')}\n`);
      writeFileSync(join(remote, 'old.log.gz'), gzipSync(`${lines('g', 300).join('\n')}\n`));
      const follow = startEtl(['apply', '--no-progress', pipeline('stop', remote, true)]);
      await until(() => output('stop').length >= 700, 'the first 700 lines in the output');
      appendFileSync(join(remote, 'access.log'), `${lines('a', 100, 400).join('\n')}\n`);
      await until(() => output('stop').length >= 800, 'the appended lines in the output');
      follow.child.kill('SIGINT');
      const stopped = await follow.done;
      expect(stopped.code, stopped.stderr).toBe(0);

      appendFileSync(join(remote, 'access.log'), `${lines('a', 100, 500).join('\n')}\n`);
      writeFileSync(join(remote, 'new.log'), `${lines('n', 50).join('\n')}\n`);
      const once = await etl(['apply', '--no-progress', pipeline('stop', remote, false)]);
      expect(once.code, once.stderr).toBe(0);
      const expected = [...lines('a', 600), ...lines('g', 300), ...lines('n', 50)];
      expect(output('stop').sort()).toEqual(expected.sort());
    });

    it('a run killed with SIGKILL and run again stores every line once', async () => {
      const remote = remoteDir('kill');
      writeFileSync(join(remote, 'access.log'), `${lines('k', 3000).join('\n')}\n`);
      const follow = startEtl(['apply', '--no-progress', pipeline('kill', remote, true)]);
      await until(() => output('kill').length >= 3000, 'the 3000 lines in the output');
      // Lines arriving while it runs; killed as soon as some of them are out, maybe before their checkpoint.
      appendFileSync(join(remote, 'access.log'), `${lines('k', 2000, 3000).join('\n')}\n`);
      await until(() => output('kill').length > 3000, 'some of the appended lines in the output');
      follow.child.kill('SIGKILL');
      await follow.done;
      appendFileSync(join(remote, 'access.log'), `${lines('k', 500, 5000).join('\n')}\n`);
      const again = await etl(['apply', '--no-progress', pipeline('kill', remote, false)]);
      expect(again.code, again.stderr).toBe(0);
      const out = output('kill');
      expect(out).toHaveLength(5500);
      expect(out).toEqual(lines('k', 5500));
    });
  },
);
