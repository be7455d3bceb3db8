// The bundled CLI: engine/cli/main.ts and what it imports, with the small pure-JavaScript packages of the hot
// path, built by esbuild into a few ESM files under dist/bundle/ (the dynamic imports stay lazy chunks). Node
// then resolves and compiles a few dozen files instead of ~170 (`etl validate`) to ~250 (`etl apply`).
//
// `node bin/bundle.js` builds it (`npm ci` does, through the `prepare` script); bin/etl.js runs it only while it
// is fresh (freshBundle below), else the sources as ever: editing a .ts file never runs stale code.
// Plain JavaScript that any Node npm runs on can load, as bin/runtime.js: `prepare` runs on the machine's Node.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Where bundles are built: one folder per build, and manifest.json naming the current one with its inputs. */
export const BUNDLE_ROOT = join(ROOT, 'dist', 'bundle');
const MANIFEST = 'manifest.json';
const ENTRY = 'engine/cli/main.ts';
/**
 * Packages bundled in: pure JavaScript, on the path of `etl validate` and a one-line `etl apply` (yaml alone
 * was 72 CommonJS modules). Every other package stays external and is loaded from node_modules as from the
 * sources: native code, files found next to itself (pglite, the GeoIP database), worker entries (pino), Ajv's
 * runtime helpers that the compiled validators require.
 */
const BUNDLED = new Set(['yaml', 'rxjs', 'picomatch', 'fastest-levenshtein']);
/** Builds kept besides the current one: an `etl apply` started from an older build still loads its lazy chunks. */
const KEEP_OLDER = 3;

/**
 * The bundle's entry (a path), when a bundle was built and every file it was built from is as it was then: our
 * files (this one included) and the package.json of each package bundled in have the size and modification time
 * they had. Else undefined. `bundleRoot` is for tests.
 */
export function freshBundle(bundleRoot = BUNDLE_ROOT) {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(join(bundleRoot, MANIFEST), 'utf8'));
  } catch {
    return undefined;
  }
  if (manifest.version !== 1) return undefined;
  for (const [path, size, mtimeMs] of manifest.inputs) {
    // ROOT ends with a separator; path.join here took 10 of the check's 15 ms (its normalisation, run cold).
    const stat = statSync(ROOT + path, { throwIfNoEntry: false });
    if (stat === undefined || stat.size !== size || stat.mtimeMs !== mtimeMs) return undefined;
  }
  return join(bundleRoot, manifest.build, 'main.js');
}

/**
 * Our modules that use `import.meta.url` or `import.meta.dirname` find files next to themselves (compiled
 * validators, signatures.yaml, the PostgreSQL template, worker entries, package.json): in the bundle they
 * get the URL of their source file instead of the chunk's, as a path relative to the chunk (so that a moved
 * checkout still works). esbuild replaces the expressions themselves (not text in strings or comments).
 */
function sourceLocations(outdir, esbuild) {
  return {
    name: 'etl-source-locations',
    setup(build) {
      build.onLoad({ filter: /\.(ts|js|mjs)$/ }, async (args) => {
        if (args.path.includes(`${sep}node_modules${sep}`)) return undefined;
        const source = readFileSync(args.path, 'utf8');
        if (!source.includes('import.meta')) return undefined;
        const href = relative(outdir, args.path).split(sep).join('/');
        const prelude = [
          "import { dirname as __etlDirname } from 'node:path';",
          "import { fileURLToPath as __etlFileURLToPath } from 'node:url';",
          `const __etlSourceUrl = new URL(${JSON.stringify(href)}, import.meta.url).href;`,
          'const __etlSourceDirname = __etlDirname(__etlFileURLToPath(__etlSourceUrl));',
        ].join(' ');
        const { code } = await esbuild.transform(source, {
          loader: args.path.endsWith('.ts') ? 'ts' : 'js',
          format: 'esm',
          sourcefile: args.path,
          define: { 'import.meta.url': '__etlSourceUrl', 'import.meta.dirname': '__etlSourceDirname' },
        });
        if (code.includes('import.meta')) {
          throw new Error(`${args.path}: an import.meta use the bundle cannot map (only .url and .dirname)`);
        }
        return { contents: `${prelude}\n${code}`, loader: 'js' };
      });
    },
  };
}

/** Everything but BUNDLED and our own files stays an import of node_modules (or of node itself). */
const externals = {
  name: 'etl-externals',
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith('node:')) return { external: true };
      const parts = args.path.split('/');
      const name = args.path.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
      return BUNDLED.has(name) ? undefined : { external: true };
    });
  },
};

/** Builds a new bundle under `bundleRoot` and makes it the current one; resolves with its folder. */
export async function buildBundle(bundleRoot = BUNDLE_ROOT) {
  const esbuild = await import('esbuild');
  const id = `${Date.now().toString(36)}-${process.pid}`;
  const outdir = join(bundleRoot, id);
  mkdirSync(bundleRoot, { recursive: true });
  // Sizes and times are taken before the build reads the files: one edited during the build makes it stale.
  const before = new Map();
  const result = await esbuild.build({
    entryPoints: { main: join(ROOT, ENTRY) },
    absWorkingDir: ROOT,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    outdir,
    metafile: true,
    logLevel: 'warning',
    legalComments: 'none',
    // The CommonJS packages bundled in (yaml) require node's own modules.
    banner: {
      js: "import { createRequire as __etlCreateRequire } from 'node:module'; const require = __etlCreateRequire(import.meta.url);",
    },
    plugins: [
      {
        name: 'etl-input-stats',
        setup(build) {
          build.onLoad({ filter: /.*/ }, (args) => {
            if (!before.has(args.path)) before.set(args.path, statSync(args.path));
            return undefined;
          });
        },
      },
      externals,
      sourceLocations(outdir, esbuild),
    ],
  });
  // Our files one by one; of a package bundled in, its package.json (its version): a stat each costs
  // 5–15 µs, and the launcher checks them all at every start.
  const inputs = [fileURLToPath(import.meta.url), ...Object.keys(result.metafile.inputs).map((p) => resolve(ROOT, p))];
  const checked = inputs.map((path) => {
    const match = /^(.*[\\/]node_modules[\\/](?:@[^\\/]+[\\/])?[^\\/]+)[\\/]/.exec(path);
    return match ? join(match[1], 'package.json') : path;
  });
  const entries = [...new Set(checked)].map((path) => {
    const stat = before.get(path) ?? statSync(path);
    return [relative(ROOT, path).split(sep).join('/'), stat.size, stat.mtimeMs];
  });
  const manifest = { version: 1, build: id, inputs: entries };
  const temporary = join(bundleRoot, `${MANIFEST}.${id}`);
  writeFileSync(temporary, `${JSON.stringify(manifest)}\n`);
  renameSync(temporary, join(bundleRoot, MANIFEST));
  removeOlderBuilds(bundleRoot, id);
  return outdir;
}

function removeOlderBuilds(bundleRoot, current) {
  const builds = readdirSync(bundleRoot, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && entry.name !== current)
    .map((entry) => ({ path: join(bundleRoot, entry.name), time: statSync(join(bundleRoot, entry.name)).mtimeMs }))
    .sort((a, b) => b.time - a.time);
  for (const old of builds.slice(KEEP_OLDER)) rmSync(old.path, { recursive: true, force: true });
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const started = Date.now();
  try {
    await import('esbuild');
  } catch {
    // `npm ci --omit=dev` (an image): no esbuild, no bundle; etl runs its sources.
    process.stderr.write('etl: esbuild is not installed: no bundle built; etl runs from its sources\n');
    process.exit(0);
  }
  const outdir = await buildBundle();
  process.stderr.write(`etl: bundle built in ${Date.now() - started} ms: ${relative(ROOT, outdir)}\n`);
}
