/**
 * Runs s3rver (an S3-compatible HTTP server on the local disk) for the tests: `node --openssl-legacy-provider
 * s3-server-main.ts <directory>`. Prints `listening <port>` once it accepts requests, then a line per request
 * (s3rver's log), and runs until killed.
 * The legacy provider is needed because s3rver makes ListObjectsV2 continuation tokens with DES, which
 * OpenSSL 3 leaves out by default.
 */
import S3rver from 's3rver';

const [directory] = process.argv.slice(2) as [string];
const server = new S3rver({ address: '127.0.0.1', port: 0, silent: false, directory });
const address = (await server.run()) as { port: number };
process.stdout.write(`listening ${address.port}\n`);
