#!/usr/bin/env node
require('./run-typescript.cjs').runTypeScript('device-sim/main.ts');
