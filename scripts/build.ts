import { createWriteStream, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { ZipFile } from 'yazl';
import { loadWiring, REPO_ROOT } from '../wiring/index';

/**
 * Bundles each function named in the wiring into dist/functions/NAME/index.mjs (ESM, Node 22,
 * minified, with a source map) and zips it as dist/functions/NAME.zip, the artefact Terraform
 * deploys and the local runtime loads. Prints the bundle sizes.
 */
const OUT = join(REPO_ROOT, 'dist', 'functions');

// ESM bundles of CommonJS dependencies call require(); give them one.
const BANNER = [
  "import { createRequire as __rotorCreateRequire } from 'node:module';",
  "import { fileURLToPath as __rotorFileURLToPath } from 'node:url';",
  "import { dirname as __rotorDirname } from 'node:path';",
  'const require = __rotorCreateRequire(import.meta.url);',
  'const __filename = __rotorFileURLToPath(import.meta.url);',
  'const __dirname = __rotorDirname(__filename);',
].join('\n');

function zip(files: { path: string; name: string }[], target: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const archive = new ZipFile();
    // A fixed mtime keeps the zip, and so Terraform's source_code_hash, stable across builds.
    const mtime = new Date('2020-01-01T00:00:00Z');
    for (const file of files) archive.addBuffer(readFileSync(file.path), file.name, { mtime, mode: 0o644 });
    archive.end();
    archive.outputStream.pipe(createWriteStream(target)).on('close', resolve).on('error', reject);
  });
}

async function main(): Promise<void> {
  const names = Object.keys(loadWiring().functions);
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  const rows: string[] = [];
  for (const name of names) {
    const dir = join(OUT, name);
    const outfile = join(dir, 'index.mjs');
    await build({
      entryPoints: [join(REPO_ROOT, 'functions', `${name}.ts`)],
      outfile,
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'esm',
      minify: true,
      sourcemap: true,
      sourcesContent: false,
      legalComments: 'none',
      banner: { js: BANNER },
      logLevel: 'warning',
      // The Lambda nodejs22.x runtime ships the AWS SDK v3, but bundling pins the version
      // we test with and cold-starts faster (no resolution through the runtime's node_modules).
      external: [],
    });
    const zipFile = join(OUT, `${name}.zip`);
    await zip([{ path: outfile, name: 'index.mjs' }, { path: `${outfile}.map`, name: 'index.mjs.map' }], zipFile);
    const kb = (bytes: number): string => `${(bytes / 1024).toFixed(0)} KiB`;
    rows.push(`  ${name.padEnd(22)} ${kb(statSync(outfile).size).padStart(9)} bundle  ${kb(statSync(zipFile).size).padStart(9)} zip`);
  }
  console.log(`built ${names.length} functions into dist/functions:`);
  console.log(rows.join('\n'));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
