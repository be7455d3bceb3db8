/**
 * One SSH connection with its SFTP channel (ssh2-sftp-client over ssh2): logs in with a key or a password,
 * refuses a server whose host key is not the configured one, and tells when the connection has gone, so that
 * the source knows a failure is worth a reconnection.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { SFTPWrapper } from 'ssh2';
import SftpClient from 'ssh2-sftp-client';
import { EtlError, errorMessage } from '../../../engine/errors.ts';
import type { Logger } from '../../../engine/operator.ts';
import type { SftpSourceOptions } from './schema.ts';

/** What a connection needs besides the options: the key, read once per run. */
export interface Credentials {
  readonly privateKey?: Buffer | string;
}

export async function readCredentials(options: SftpSourceOptions, baseDir: string): Promise<Credentials> {
  if (options.private_key !== undefined) return { privateKey: options.private_key };
  if (options.private_key_path === undefined) return {};
  const path = resolve(baseDir, options.private_key_path);
  try {
    return { privateKey: await readFile(path) };
  } catch (error) {
    throw new EtlError(
      'ETL_CFG_INVALID',
      `cannot read the private key ${path} (private_key_path): ${errorMessage(error)}`,
    );
  }
}

/** The OpenSSH form of a host key's fingerprint: `SHA256:` and the unpadded base64 of the key blob's hash. */
export function fingerprintOf(hostKey: Buffer): string {
  return `SHA256:${createHash('sha256').update(hostKey).digest('base64').replace(/=+$/, '')}`;
}

export class Session {
  readonly client: SftpClient;
  /** The SFTP channel itself, for the pipelined range reads (range-reader.ts); set once connected. */
  sftp: SFTPWrapper | undefined;
  private closedAt: number | undefined;

  private constructor(client: SftpClient) {
    this.client = client;
  }

  /** False once the connection has closed, or failed: anything still running on it fails. */
  get alive(): boolean {
    return this.closedAt === undefined;
  }

  static async open(options: SftpSourceOptions, credentials: Credentials, logger: Logger): Promise<Session> {
    const where = `${options.host}:${options.port}`;
    let session: Session | undefined;
    const gone = (): void => {
      if (session) session.closedAt ??= Date.now();
    };
    // The library's default listeners print to the console; what they see is known to the source from the
    // failure of the operation in progress, or the next one.
    const client = new SftpClient(`etl ${where}`, {
      error: (error: unknown) => {
        gone();
        logger.debug('SFTP connection error', { server: where, error: errorMessage(error) });
      },
      end: gone,
      close: gone,
    });
    session = new Session(client);
    const expected = options.insecure_accept_any_host_key ? undefined : options.host_key_fingerprint;
    let refusedKey: string | undefined;
    try {
      session.sftp = await client.connect({
        host: options.host,
        port: options.port,
        username: options.username,
        ...(credentials.privateKey === undefined ? {} : { privateKey: credentials.privateKey }),
        ...(options.passphrase === undefined ? {} : { passphrase: options.passphrase }),
        ...(options.password === undefined ? {} : { password: options.password }),
        readyTimeout: options.connect_timeout_seconds * 1000,
        // A connection whose peer vanished without a word (a cable, a NAT) is noticed within about 30 s.
        keepaliveInterval: 10_000,
        keepaliveCountMax: 3,
        hostVerifier: (hostKey: Buffer): boolean => {
          if (expected === undefined) return true;
          const seen = fingerprintOf(hostKey);
          if (seen === expected.replace(/=+$/, '')) return true;
          refusedKey = seen;
          return false;
        },
      });
    } catch (error) {
      gone();
      await client.end().catch(() => {});
      if (refusedKey !== undefined) {
        throw new EtlError(
          'ETL_RUN_SOURCE_FAILED',
          `the SFTP server at ${where} shows host key ${refusedKey}, not the host_key_fingerprint ${expected}: ` +
            'refused before logging in. If the server was reinstalled or its key changed, check the new ' +
            'fingerprint on the server (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and set it',
        );
      }
      const level = (error as { level?: unknown }).level;
      // The library prefixes the step it was at (`getConnection: …`), which says nothing to a user.
      const reason = errorMessage(error).replace(/^(getConnection|connect)(: |->)/, '');
      if (level === 'client-authentication' || /authentication methods failed/i.test(reason)) {
        throw new EtlError(
          'ETL_RUN_SOURCE_FAILED',
          `the SFTP server at ${where} refused the login of ${options.username}: ${reason}`,
          { cause: error },
        );
      }
      const failure = new Error(`cannot connect to the SFTP server at ${where}: ${reason}`, { cause: error });
      throw Object.assign(failure, { retriable: true });
    }
    return session;
  }

  async close(): Promise<void> {
    this.closedAt ??= Date.now();
    await this.client.end().catch(() => {});
  }
}
