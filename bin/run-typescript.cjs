'use strict';
// Runs a TypeScript entry point under tsx's loader, so `npx rotor` and `npx rotor-device`
// work from a fresh clone without a compile step. Node 20 cannot register tsx from a CommonJS
// file in-process for ESM-only dependencies, so the entry runs in a child node with
// `--import <tsx loader>`; signals are forwarded and its exit code becomes ours.
const { spawn } = require('node:child_process');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');

exports.runTypeScript = function runTypeScript(entry) {
  const loader = pathToFileURL(join(__dirname, '..', 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
  const runner = join(__dirname, 'main-runner.ts');
  const child = spawn(
    process.execPath,
    ['--import', loader, runner, join(__dirname, '..', entry), ...process.argv.slice(2)],
    { stdio: 'inherit' },
  );
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => child.kill(signal));
  }
  child.on('exit', (code, signal) => {
    process.exit(code ?? (signal ? 128 + (require('node:os').constants.signals[signal] ?? 1) : 1));
  });
};
