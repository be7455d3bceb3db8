import { defineSource, type OptionProblem } from '../../../engine/operator.ts';
import { RAW_LINE_SCHEMA } from '../../../engine/record-schema.ts';
import { type SftpSourceOptions, schema } from './schema.ts';

const defaults = {
  port: 22,
  insecure_accept_any_host_key: false,
  pattern: '*',
  follow: false,
  poll_interval_seconds: 10,
  max_line_bytes: 65536,
  connect_timeout_seconds: 20,
  max_attempts: 10,
} as const satisfies Omit<SftpSourceOptions, 'host' | 'username' | 'directory'>;

export default defineSource<typeof schema, SftpSourceOptions>({
  type: 'sftp',
  stability: 'beta',
  summary: 'Polls a directory on an SFTP server and reads new files and the grown tails of files (plain or gzip)',
  schema,
  outputs: { default: 'raw' },
  // Lines longer than max_line_bytes are cut and marked `truncated: true`, as the file source does.
  outputSchemas: () => ({ default: RAW_LINE_SCHEMA }),
  examples: [
    {
      ...defaults,
      host: 'logs.example.com',
      username: 'etl',
      private_key_path: '/etc/etl/sftp_ed25519',
      host_key_fingerprint: 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s',
      directory: '/var/log/nginx',
      pattern: 'access.log*',
    },
    {
      ...defaults,
      host: 'sftp.partner.example',
      port: 2222,
      username: 'acme',
      private_key: '-----BEGIN OPENSSH PRIVATE KEY-----\n…\n-----END OPENSSH PRIVATE KEY-----\n',
      host_key_fingerprint: 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s',
      directory: 'outgoing',
      pattern: '*.log.gz',
      follow: true,
      poll_interval_seconds: 60,
    },
  ],
  unbounded: (options) => options.follow,
  validate(options): OptionProblem[] {
    const problems: OptionProblem[] = [];
    if (options.host_key_fingerprint === undefined && !options.insecure_accept_any_host_key) {
      problems.push({
        path: ['host_key_fingerprint'],
        message: "host_key_fingerprint is required: the server's host key is checked before logging in",
        hint:
          'run `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the server (or `ssh-keyscan -p PORT HOST | ' +
          'ssh-keygen -lf -` from a trusted network) and copy the SHA256:… value; insecure_accept_any_host_key: true ' +
          'turns the check off',
      });
    }
    if (options.host_key_fingerprint !== undefined && options.insecure_accept_any_host_key) {
      problems.push({
        path: ['insecure_accept_any_host_key'],
        message: 'insecure_accept_any_host_key: true ignores the host_key_fingerprint given',
        hint: 'remove insecure_accept_any_host_key',
      });
    } else if (options.insecure_accept_any_host_key) {
      problems.push({
        path: ['insecure_accept_any_host_key'],
        severity: 'warning',
        message: "the server's host key is not checked: anyone answering at the host's address receives the login",
        hint: 'set host_key_fingerprint instead',
      });
    }
    if (options.private_key_path !== undefined && options.private_key !== undefined) {
      problems.push({
        path: ['private_key'],
        message: 'give private_key_path or private_key, not both',
      });
    }
    if (options.private_key_path === undefined && options.private_key === undefined && options.password === undefined) {
      problems.push({
        path: [],
        message: 'no way to log in: give private_key_path, private_key or password',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: the hint shows the interpolation syntax
        hint: 'private_key_path: /path/to/id_ed25519, or private_key: ${secret:SFTP_PRIVATE_KEY}',
      });
    }
    if (
      options.passphrase !== undefined &&
      options.private_key_path === undefined &&
      options.private_key === undefined
    ) {
      problems.push({
        path: ['passphrase'],
        message: 'passphrase without a private key',
        hint: 'add private_key_path',
      });
    }
    if (!options.follow && options.poll_interval_seconds !== defaults.poll_interval_seconds) {
      problems.push({
        path: ['poll_interval_seconds'],
        severity: 'warning',
        message: 'poll_interval_seconds applies only with follow: true',
      });
    }
    return problems;
  },
  create: async (options, ctx) => (await import('./sftp.ts')).createSftpSource(options, ctx),
});
