import type { FromSchema } from 'json-schema-to-ts';
import { maxLineBytesProperty } from '../../shared/line-reader/schema.ts';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/sources/sftp.json',
  type: 'object',
  additionalProperties: false,
  required: ['host', 'username', 'directory'],
  description:
    'Polls a directory on an SFTP server and reads the lines of the files whose names match a glob: new files ' +
    'whole, plain files that grew from where the last read ended, gzip files (`.gz`) whole. Each line becomes ' +
    '`{ message }`. The checkpoint position records, per file, its path, size, modification time, and how far it ' +
    'was read, so a rerun reads only what is new. The server is identified by its host key fingerprint.',
  properties: {
    host: {
      type: 'string',
      minLength: 1,
      description: 'Host name or address of the SFTP server.',
      examples: ['logs.example.com'],
    },
    port: {
      type: 'integer',
      minimum: 1,
      maximum: 65535,
      default: 22,
      description: 'TCP port of the SSH server.',
      examples: [22, 2222],
    },
    username: {
      type: 'string',
      minLength: 1,
      description: 'The user to log in as.',
      examples: ['etl'],
    },
    private_key_path: {
      type: 'string',
      minLength: 1,
      description:
        'Path of the private key file (OpenSSH or PEM format) to log in with; relative paths resolve against the ' +
        'working directory. Give this or `private_key`.',
      examples: ['/etc/etl/sftp_ed25519'],
    },
    private_key: {
      type: 'string',
      minLength: 1,
      writeOnly: true,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the description shows the interpolation syntax
      description: 'The text of the private key, from a secret: `${secret:SFTP_PRIVATE_KEY}`. Or `private_key_path`.',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the example shows the interpolation syntax
      examples: ['${secret:SFTP_PRIVATE_KEY}'],
    },
    passphrase: {
      type: 'string',
      writeOnly: true,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the description shows the interpolation syntax
      description: 'Passphrase of an encrypted private key, from a secret: `${secret:SFTP_KEY_PASSPHRASE}`.',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the example shows the interpolation syntax
      examples: ['${secret:SFTP_KEY_PASSPHRASE}'],
    },
    password: {
      type: 'string',
      writeOnly: true,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the description shows the interpolation syntax
      description: 'Password, from a secret (`${secret:SFTP_PASSWORD}`): tried without a key, or when it is refused.',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the example shows the interpolation syntax
      examples: ['${secret:SFTP_PASSWORD}'],
    },
    host_key_fingerprint: {
      type: 'string',
      pattern: '^SHA256:[A-Za-z0-9+/]{43}=?$',
      description:
        "The SHA-256 fingerprint of the server's host key, as `ssh-keygen -lf` prints it (`SHA256:` and 43 base64 " +
        'characters); a server showing another key is refused before anything is sent to it. Required unless ' +
        '`insecure_accept_any_host_key: true`. Get it on the server with `ssh-keygen -lf ' +
        '/etc/ssh/ssh_host_ed25519_key.pub`, or from a trusted network with `ssh-keyscan host | ssh-keygen -lf -`.',
      examples: ['SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s'],
    },
    insecure_accept_any_host_key: {
      type: 'boolean',
      default: false,
      description:
        'true: log in to whatever server answers at `host`, without checking its host key (a machine in the middle ' +
        'would see the password and the logs). For tests only; a warning says so at validation.',
      examples: [false],
    },
    directory: {
      type: 'string',
      minLength: 1,
      description: 'The remote directory to poll (not recursive); relative to the login directory unless absolute.',
      examples: ['/var/log/nginx', 'outgoing/logs'],
    },
    pattern: {
      type: 'string',
      minLength: 1,
      default: '*',
      description:
        'Glob matched against the file names in `directory` (`*`, `?`, `[a-z]`, `{a,b}`); names starting with `.` ' +
        'match only a pattern that starts with `.`. Files ending in `.gz` are decompressed.',
      examples: ['access.log*', '*.{log,log.gz}'],
    },
    follow: {
      type: 'boolean',
      default: false,
      description:
        'false: read every matching file once to the size it had when listed, then finish. true: list the directory ' +
        'again every `poll_interval_seconds` and read what is new, until stopped.',
      examples: [false, true],
    },
    poll_interval_seconds: {
      type: 'number',
      minimum: 0.1,
      maximum: 86400,
      default: 10,
      description: 'With `follow: true`: the pause between the end of one listing and the next.',
      examples: [10, 60],
    },
    max_line_bytes: maxLineBytesProperty,
    connect_timeout_seconds: {
      type: 'number',
      minimum: 1,
      maximum: 600,
      default: 20,
      description: 'How long a connection attempt, SSH handshake included, may take.',
      examples: [20],
    },
    max_attempts: {
      type: 'integer',
      minimum: 1,
      default: 10,
      description:
        'Attempts at one step (a listing, the reading of one file) when the connection fails or is lost: each ' +
        'reconnects and resumes after the last line emitted, with exponential backoff (0.5 s doubling, at most ' +
        '30 s). A refused host key or login is never retried.',
      examples: [10],
    },
  },
} as const;

export type SftpSourceOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
