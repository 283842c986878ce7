#!/usr/bin/env node
// Entry for the `fleetscore` bin: runs the TypeScript CLI through tsx, so there is no build step.
require('tsx/cjs');
require('./main.ts');
