'use strict';
// Runs a TypeScript entry point through tsx's loader, so `npx rotor` and `npx rotor-device`
// work from a fresh clone without a compile step. The entry exports main(argv) → exit code.
const { register } = require('tsx/esm/api');
const { pathToFileURL } = require('node:url');
const { join } = require('node:path');

exports.runTypeScript = function runTypeScript(entry, commandName) {
  register();
  import(pathToFileURL(join(__dirname, '..', entry)).href)
    .then((module) => module.main(process.argv.slice(2)))
    .then((code) => {
      process.exitCode = code;
    })
    .catch((error) => {
      console.error(`${commandName}: ${error && error.message ? error.message : error}`);
      process.exitCode = 1;
    });
};
