#!/usr/bin/env node
require('./run-typescript.cjs').runTypeScript('cli/main.ts');
