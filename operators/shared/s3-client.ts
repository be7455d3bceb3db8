/** The S3 client the `s3` source and sink make from their connection options. */
import { S3Client } from '@aws-sdk/client-s3';
import type { S3ConnectionOptions } from './s3-options.ts';

export function createS3Client(options: S3ConnectionOptions): S3Client {
  const credentials =
    options.access_key_id !== undefined && options.secret_access_key !== undefined
      ? {
          accessKeyId: options.access_key_id,
          secretAccessKey: options.secret_access_key,
          ...(options.session_token === undefined ? {} : { sessionToken: options.session_token }),
        }
      : undefined;
  return new S3Client({
    region: options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    forcePathStyle: options.force_path_style,
    ...(credentials === undefined ? {} : { credentials }),
    maxAttempts: options.max_attempts,
    // Checksums only where the API requires them: the SDK's default (a CRC32 trailer on every upload, in
    // aws-chunked encoding) is refused by many S3-compatible stores; TLS and the MD5 of multipart parts still
    // guard the bytes.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** The HTTP status of an SDK error (404 for a key or bucket that does not exist), or undefined. */
export function s3Status(error: unknown): number | undefined {
  const metadata = (error as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata;
  return typeof metadata?.httpStatusCode === 'number' ? metadata.httpStatusCode : undefined;
}
