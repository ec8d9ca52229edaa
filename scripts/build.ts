import { execFileSync } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type BuildOptions, type Metafile, type Plugin } from 'esbuild';
import { ZipFile } from 'yazl';
import { loadWiring, REPO_ROOT } from '../wiring/index';

/**
 * Bundles each function named in the wiring into dist/functions/NAME/index.mjs (ESM, Node 22,
 * minified) and zips it as dist/functions/NAME.zip, the artefact Terraform deploys and the
 * local runtime loads. Prints each bundle's size, its zip's size and how long Node takes to
 * load the module, next to a bundle holding only the SDK clients that function uses, built and
 * timed in the same run: the difference is what Rotor's own code and its other dependencies
 * cost a cold start. A zip over ZIP_BUDGET_BYTES fails the build.
 */
const OUT = join(REPO_ROOT, 'dist', 'functions');
const BASELINE_DIR = join(REPO_ROOT, 'dist', 'sdk-clients-only');

/** Issue 12: every function's zip within 200 KB. */
export const ZIP_BUDGET_BYTES = 200 * 1000;
/**
 * Fresh Node processes per bundle; the fastest is reported, the figure least disturbed by
 * whatever else the machine runs (the median of five swung by ±40 % on a shared 2-core box).
 * ROTOR_LOAD_RUNS=0 skips the timing.
 */
const LOAD_RUNS = Number.isInteger(Number(process.env.ROTOR_LOAD_RUNS ?? '3')) ? Number(process.env.ROTOR_LOAD_RUNS ?? '3') : 3;

// ESM bundles of CommonJS dependencies call require(); give them one.
const BANNER = [
  "import { createRequire as __rotorCreateRequire } from 'node:module';",
  "import { fileURLToPath as __rotorFileURLToPath } from 'node:url';",
  "import { dirname as __rotorDirname } from 'node:path';",
  'const require = __rotorCreateRequire(import.meta.url);',
  'const __filename = __rotorFileURLToPath(import.meta.url);',
  'const __dirname = __rotorDirname(__filename);',
].join('\n');

/**
 * Lambda hands a function its credentials in environment variables, the first source of the
 * SDK's default chain. The chain's file- and token-based sources (SSO, shared config files,
 * credential_process, a web identity token file) are never reached there, yet they and the
 * STS/SSO clients they call were a sixth of every bundle. Each is replaced by a source that
 * declines with the SDK's own "try the next one" signal, so the chain still ends with the
 * container and instance metadata sources, which stay bundled.
 */
const UNREACHED_CREDENTIAL_SOURCES: Record<string, string> = {
  '@aws-sdk/credential-provider-sso': 'fromSSO',
  '@aws-sdk/credential-provider-ini': 'fromIni',
  '@aws-sdk/credential-provider-process': 'fromProcess',
  '@aws-sdk/credential-provider-web-identity': 'fromTokenFile',
};

const lambdaCredentialSources: Plugin = {
  name: 'lambda-credential-sources',
  setup(plugin) {
    const filter = new RegExp(`^(${Object.keys(UNREACHED_CREDENTIAL_SOURCES).join('|')})$`);
    plugin.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'unreached-credential-source' }));
    plugin.onLoad({ filter: /.*/, namespace: 'unreached-credential-source' }, (args) => ({
      loader: 'js',
      contents: `export const ${UNREACHED_CREDENTIAL_SOURCES[args.path]} = () => async () => {
  const error = new Error(${JSON.stringify(`${args.path} is not bundled: Lambda provides credentials in environment variables`)});
  error.name = 'CredentialsProviderError';
  error.tryNextLink = true;
  throw error;
};`,
    }));
  },
};

const COMMON: BuildOptions = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  // The packages' ES module builds first: esbuild's default for Node ('main' first) picks the
  // CommonJS builds, which it cannot tree-shake, and with them the SDK's browser user-agent
  // parser and every protocol codec; this alone took a third off each bundle.
  mainFields: ['module', 'main'],
  minify: true,
  // The map stays beside the bundle in dist/ for reading a stack trace; it is not shipped, as
  // Lambda would not use it without --enable-source-maps (which slows every cold start).
  sourcemap: true,
  sourcesContent: false,
  legalComments: 'none',
  banner: { js: BANNER },
  logLevel: 'warning',
  // The Lambda nodejs22.x runtime ships the AWS SDK v3, but bundling pins the version we test
  // with and cold-starts faster (no resolution through the runtime's node_modules).
  external: [],
  plugins: [lambdaCredentialSources],
  metafile: true,
};

/** The client class of each SDK package a function may use. */
const SDK_CLIENTS: Record<string, string> = {
  '@aws-sdk/client-dynamodb': 'DynamoDBClient',
  '@aws-sdk/lib-dynamodb': 'DynamoDBDocumentClient',
  '@aws-sdk/client-iot': 'IoTClient',
  '@aws-sdk/client-iot-data-plane': 'IoTDataPlaneClient',
  '@aws-sdk/client-lambda': 'LambdaClient',
  '@aws-sdk/client-sfn': 'SFNClient',
  '@aws-sdk/client-sns': 'SNSClient',
};

/** The SDK client packages a bundle holds code of, read from esbuild's metafile. */
function sdkPackagesOf(metafile: Metafile): string[] {
  const packages = new Set<string>();
  for (const output of Object.values(metafile.outputs)) {
    for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
      const match = /node_modules\/(@aws-sdk\/[^/]+)\//.exec(input);
      if (match && SDK_CLIENTS[match[1]] && bytesInOutput > 0) packages.add(match[1]);
    }
  }
  return [...packages].sort();
}

/** A module holding the SDK clients of a function and nothing else: its load-time baseline. */
function sdkClientsOnly(packages: readonly string[]): string {
  const imports = packages.map((pkg) => `import { ${SDK_CLIENTS[pkg]} } from '${pkg}';`);
  return `${imports.join('\n')}\nexport const clients = [${packages.map((pkg) => SDK_CLIENTS[pkg]).join(', ')}];\n`;
}

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

interface LoadTime {
  /** Wall-clock milliseconds to import the module: Lambda's init, less the runtime's own start. */
  wall: number;
  /** CPU milliseconds the import took: what wall time would be on an otherwise idle core. */
  cpu: number;
}

function loadTime(bundle: string): LoadTime {
  const script = [
    'const cpu = process.cpuUsage(); const t = performance.now();',
    `await import(${JSON.stringify(pathToFileURL(bundle).href)});`,
    'const used = process.cpuUsage(cpu);',
    'process.stdout.write(JSON.stringify({ wall: performance.now() - t, cpu: (used.user + used.system) / 1000 }));',
  ].join(' ');
  const env = { PATH: process.env.PATH ?? '', AWS_REGION: 'us-east-1', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' })) as LoadTime;
}

interface Built {
  name: string;
  bundle: string;
  bundleBytes: number;
  zipBytes: number;
  /** The bundle of the same SDK clients alone. */
  baseline: string;
}

async function main(): Promise<void> {
  const names = Object.keys(loadWiring().functions);
  rmSync(OUT, { recursive: true, force: true });
  rmSync(BASELINE_DIR, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  mkdirSync(BASELINE_DIR, { recursive: true });

  const built: Built[] = [];
  const baselines = new Map<string, { bundle: string; bytes: number }>();
  for (const name of names) {
    const outfile = join(OUT, name, 'index.mjs');
    const { metafile } = await build({ ...COMMON, entryPoints: [join(REPO_ROOT, 'functions', `${name}.ts`)], outfile });
    const zipFile = join(OUT, `${name}.zip`);
    await zip([{ path: outfile, name: 'index.mjs' }], zipFile);
    const packages = sdkPackagesOf(metafile as Metafile);
    const key = packages.filter((pkg) => pkg !== '@aws-sdk/lib-dynamodb').map((pkg) => SDK_CLIENTS[pkg].replace(/Client$/, '')).join(' ') || 'none';
    if (!baselines.has(key)) {
      const bundle = join(BASELINE_DIR, key.replace(/ /g, '+'), 'index.mjs');
      await build({ ...COMMON, sourcemap: false, metafile: false, stdin: { contents: sdkClientsOnly(packages), resolveDir: REPO_ROOT, loader: 'js' }, outfile: bundle });
      baselines.set(key, { bundle, bytes: statSync(bundle).size });
    }
    built.push({ name, bundle: outfile, bundleBytes: statSync(outfile).size, zipBytes: statSync(zipFile).size, baseline: key });
  }

  // Round robin, so that a noisy moment on a shared machine costs every bundle alike.
  const modules = [...built.map((b) => b.bundle), ...[...baselines.values()].map((b) => b.bundle)];
  const samples = new Map<string, LoadTime[]>(modules.map((m) => [m, []]));
  for (let run = 0; run < LOAD_RUNS; run++) for (const m of modules) samples.get(m)?.push(loadTime(m));
  const fastest = (bundle: string, kind: keyof LoadTime): string =>
    LOAD_RUNS > 0 ? `${Math.min(...(samples.get(bundle) ?? []).map((sample) => sample[kind])).toFixed(0)} ms` : '-';

  const kb = (bytes: number): string => `${(bytes / 1000).toFixed(0)} KB`;
  const how = LOAD_RUNS > 0 ? `load: wall and CPU time to import the module, fastest of ${LOAD_RUNS} fresh Node ${process.versions.node} processes` : 'load not timed: ROTOR_LOAD_RUNS=0';
  console.log(`built ${names.length} functions into dist/functions (${how}):`);
  const line = (cells: string[]): string => {
    const widths = [-20, 8, 8, 8, 8, 0, -25, 8, 8, 8];
    return `  ${cells.map((cell, i) => (widths[i] < 0 ? cell.padEnd(-widths[i]) : cell.padStart(widths[i]))).join(' ')}`;
  };
  console.log(line(['function', 'bundle', 'zip', 'load', 'cpu', '', 'its SDK clients alone', 'bundle', 'load', 'cpu']));
  for (const b of built) {
    const baseline = baselines.get(b.baseline) as { bundle: string; bytes: number };
    console.log(
      line([
        b.name, kb(b.bundleBytes), kb(b.zipBytes), fastest(b.bundle, 'wall'), fastest(b.bundle, 'cpu'), '',
        b.baseline, kb(baseline.bytes), fastest(baseline.bundle, 'wall'), fastest(baseline.bundle, 'cpu'),
      ]),
    );
  }

  const over = built.filter((b) => b.zipBytes > ZIP_BUDGET_BYTES);
  if (over.length > 0) {
    throw new Error(`over the ${kb(ZIP_BUDGET_BYTES)} zip budget: ${over.map((b) => `${b.name} (${kb(b.zipBytes)})`).join(', ')}; see what weighs with esbuild's metafile`);
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
