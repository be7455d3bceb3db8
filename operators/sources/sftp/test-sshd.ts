/**
 * A real OpenSSH server for the sftp source's tests: sshd from the Debian package `openssh-server`, started on a
 * free local port as the current user with a throwaway host key and user key (made with ssh-keygen), serving
 * SFTP through `internal-sftp`. And a TCP relay in front of it that a test can cut, as a network would.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket, connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

export const SSHD = process.env.ETL_TEST_SSHD ?? '/usr/sbin/sshd';

/** Why the SFTP tests cannot run here, or undefined when they can. */
export function sshdMissing(): string | undefined {
  if (!existsSync(SSHD)) return `${SSHD} is not installed (Debian package openssh-server; .ci/run installs it)`;
  try {
    execFileSync('ssh-keygen', ['-?'], { stdio: 'ignore' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'ssh-keygen is not installed (openssh-client)';
  }
  return undefined;
}

export interface Sshd {
  readonly port: number;
  readonly user: string;
  /** The directory the tests put remote files in (an absolute path on this machine, which is the server). */
  readonly root: string;
  readonly userKeyPath: string;
  /** `SHA256:…` of the host key, as `ssh-keygen -lf` prints it. */
  readonly hostFingerprint: string;
  stop(): Promise<void>;
}

export async function startSshd(): Promise<Sshd> {
  const dir = mkdtempSync(join(tmpdir(), 'etl-sshd-'));
  const keygen = (file: string) => execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, file)]);
  keygen('host_key');
  keygen('user_key');
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'user_key.pub')));
  const hostFingerprint = execFileSync('ssh-keygen', ['-lf', join(dir, 'host_key.pub')], { encoding: 'utf8' }).split(
    ' ',
  )[1] as string;
  const root = join(dir, 'remote');
  mkdirSync(root);
  // Running as root, sshd wants its privilege separation directory, which the package's service would create.
  if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    writeFileSync(
      join(dir, 'sshd_config'),
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${join(dir, 'host_key')}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        'StrictModes no',
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'Subsystem sftp internal-sftp',
        '',
      ].join('\n'),
    );
    const child = spawn(SSHD, ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
    const started = await listening(child);
    if (started === true) {
      return {
        port,
        user: userInfo().username,
        root,
        userKeyPath: join(dir, 'user_key'),
        hostFingerprint,
        async stop() {
          const exited = new Promise((resolve) => child.once('exit', resolve));
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          await exited;
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    // Another process took the port between the probe and sshd's bind: try another one.
    if (attempt >= 3 || !started.includes('Address already in use')) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`sshd did not start: ${started}`);
    }
  }
}

/** Resolves with true once sshd says it listens, or with what it printed when it exits first. */
function listening(child: ChildProcess): Promise<true | string> {
  return new Promise((resolve) => {
    let said = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      said += chunk;
      if (said.includes('Server listening on')) resolve(true);
    });
    child.once('exit', (code, signal) => resolve(`exited (${code ?? signal}): ${said.trim()}`));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A TCP relay to `port`; `cut()` resets every connection through it, as a failing network would. */
export interface Relay {
  readonly port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  cut(): void;
  close(): Promise<void>;
}

export async function startRelay(port: number): Promise<Relay> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server: Server = createServer((client) => {
    connections++;
    const upstream = connect(port, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    get connections() {
      return connections;
    },
    cut() {
      for (const socket of sockets) socket.resetAndDestroy();
      sockets.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
