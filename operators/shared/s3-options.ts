/**
 * The connection options the `s3` source and sink share (JSON Schema properties), and their type. Light: the
 * definitions import it, so the CLI loads it without the AWS SDK.
 */
export const s3ConnectionProperties = {
  bucket: {
    type: 'string',
    minLength: 3,
    maxLength: 63,
    description: 'The bucket; it must exist.',
    examples: ['access-logs'],
  },
  region: {
    type: 'string',
    minLength: 1,
    description:
      'The bucket’s region. Absent: `AWS_REGION` (or the shared AWS config), else `us-east-1`, which S3-compatible ' +
      'stores accept.',
    examples: ['eu-west-1'],
  },
  endpoint: {
    type: 'string',
    format: 'uri',
    description: 'The URL of an S3-compatible store (MinIO, Ceph, R2, a test server). Absent: AWS S3 for `region`.',
    examples: ['http://127.0.0.1:9000'],
  },
  force_path_style: {
    type: 'boolean',
    default: false,
    description:
      'Address the bucket in the path (`http://host/bucket/key`) rather than in the host name; most S3-compatible ' +
      'stores need it.',
    examples: [true],
  },
  access_key_id: {
    type: 'string',
    minLength: 1,
    description:
      'Access key id, with `secret_access_key`. Absent: the AWS SDK’s default chain (`AWS_ACCESS_KEY_ID` and ' +
      '`AWS_SECRET_ACCESS_KEY`, the shared credentials file, an instance or container role).',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the example shows the interpolation syntax
    examples: ['${AWS_ACCESS_KEY_ID}'],
  },
  secret_access_key: {
    type: 'string',
    minLength: 1,
    writeOnly: true,
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the description shows the interpolation syntax
    description: 'Secret of `access_key_id`; read it from a secret (`${secret:AWS_SECRET_ACCESS_KEY}`).',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the example shows the interpolation syntax
    examples: ['${secret:AWS_SECRET_ACCESS_KEY}'],
  },
  session_token: {
    type: 'string',
    minLength: 1,
    writeOnly: true,
    description: 'Session token of temporary credentials, with `access_key_id` and `secret_access_key`.',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the example shows the interpolation syntax
    examples: ['${secret:AWS_SESSION_TOKEN}'],
  },
  max_attempts: {
    type: 'integer',
    minimum: 1,
    default: 5,
    description:
      'Attempts per request, the first included, with exponential backoff between them (throttling, 5xx, a lost ' +
      'connection). A request that fails them all fails the run; a rerun resumes from the last checkpoint.',
    examples: [5],
  },
} as const;

export interface S3ConnectionOptions {
  readonly bucket: string;
  readonly region?: string;
  readonly endpoint?: string;
  readonly force_path_style: boolean;
  readonly access_key_id?: string;
  readonly secret_access_key?: string;
  readonly session_token?: string;
  readonly max_attempts: number;
}

/** Cross-field checks of the connection options, for the definitions' `validate`. */
export function s3ConnectionProblems(
  options: S3ConnectionOptions,
): { path: string[]; message: string; hint: string }[] {
  const problems: { path: string[]; message: string; hint: string }[] = [];
  if ((options.access_key_id === undefined) !== (options.secret_access_key === undefined)) {
    const missing = options.access_key_id === undefined ? 'access_key_id' : 'secret_access_key';
    const given = missing === 'access_key_id' ? 'secret_access_key' : 'access_key_id';
    problems.push({ path: [given], message: `${given} without ${missing}`, hint: `add \`${missing}\`` });
  }
  if (options.session_token !== undefined && options.access_key_id === undefined) {
    problems.push({
      path: ['session_token'],
      message: 'session_token without access_key_id',
      hint: 'add `access_key_id` and `secret_access_key`',
    });
  }
  return problems;
}
