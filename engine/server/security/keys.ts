/**
 * API keys: `etl_<id>_<secret>`, the id (16 hex digits) public and used to find the key, the secret
 * (32 random bytes, base64url) shown once and stored only as an scrypt hash.
 *
 * scrypt is node:crypto's (OpenSSL's), kept with Node itself: no native addon to build, and its
 * parameters travel in the stored hash so they can be raised later. The secret is 256 random bits, so the
 * hash's cost is not what stops guessing (nothing can); it keeps a copied table from being usable as keys.
 */
import { createHash, randomBytes, scrypt as scryptCallback, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

const scrypt = promisify(scryptCallback) as (
  password: string | Buffer,
  salt: Buffer,
  keylen: number,
  options: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

/** OWASP's scrypt floor is N=2^17 for passwords; a 256-bit random secret needs no stretching, 2^15 (32 MiB). */
const COST_LOG2 = 15;
const BLOCK_SIZE = 8;
const PARALLELISM = 1;
const HASH_BYTES = 32;

const KEY_FORMAT = /^etl_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
/** Anything shaped like a key, wherever it appears in text (for redaction). */
export const KEY_PATTERN = /\betl_[0-9a-f]{16}_[A-Za-z0-9_-]{43}/g;

export interface NewKey {
  readonly id: string;
  /** The whole key, to show once. */
  readonly key: string;
  /** What is stored. */
  readonly hash: string;
}

export async function generateKey(): Promise<NewKey> {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { id, key: `etl_${id}_${secret}`, hash: await hashSecret(secret) };
}

/** The id and secret of a presented key, or undefined when it is not shaped like one. */
export function parseKey(presented: string): { id: string; secret: string } | undefined {
  const match = KEY_FORMAT.exec(presented);
  return match ? { id: match[1] as string, secret: match[2] as string } : undefined;
}

export async function hashSecret(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await derive(secret, salt, COST_LOG2, BLOCK_SIZE, PARALLELISM);
  return ['scrypt', COST_LOG2, BLOCK_SIZE, PARALLELISM, salt.toString('base64url'), hash.toString('base64url')].join(
    '$',
  );
}

/** Compares in constant time; false for a stored hash it cannot read. */
export async function verifySecret(secret: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [costLog2, blockSize, parallelism] = parts.slice(1, 4).map(Number) as [number, number, number];
  if (![costLog2, blockSize, parallelism].every((n) => Number.isInteger(n) && n > 0) || costLog2 > 20) return false;
  const expected = Buffer.from(parts[5] as string, 'base64url');
  if (expected.length !== HASH_BYTES) return false;
  const actual = await derive(secret, Buffer.from(parts[4] as string, 'base64url'), costLog2, blockSize, parallelism);
  return timingSafeEqual(actual, expected);
}

function derive(secret: string, salt: Buffer, costLog2: number, blockSize: number, parallelism: number) {
  const N = 2 ** costLog2;
  // scrypt needs 128·N·r bytes; Node refuses above maxmem (32 MiB by default, exactly 2^15·8·128).
  return scrypt(secret, salt, HASH_BYTES, { N, r: blockSize, p: parallelism, maxmem: 256 * N * blockSize });
}

/** A fast digest of a secret already verified, for the cache of verifications (never stored). */
export function secretDigest(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/** True when `held` may do what `needed` may. */
export function roleAllows(held: Role, needed: Role): boolean {
  return ROLES.indexOf(held) >= ROLES.indexOf(needed);
}
