#!/usr/bin/env node
// This launcher is CommonJS (bin/package.json): an ES module entry point makes Node start
// libuv's thread pool before the first line runs, and the pool size below must be set first.
const { availableParallelism } = require('node:os');

// LevelDB calls run on libuv's thread pool. Its default of four threads on a two-core machine
// makes the pool threads and the main thread fight over the cores; one thread per core is
// faster (bench/RESULTS.md). An explicit UV_THREADPOOL_SIZE wins.
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(2, availableParallelism()));

// Node 22.1 and later can keep the code it compiled from ringkv's and its dependencies' modules
// (in the system's temporary folder, or NODE_COMPILE_CACHE), so a start after the first one
// skips most of that compiling.
require('node:module').enableCompileCache?.();

// The compiled CLI lives in dist/ (built by `npm install` through the `prepare` script).
import('../dist/src/cli/main.js').catch((error) => {
  if (error && error.code === 'ERR_MODULE_NOT_FOUND') {
    console.error('ringkv is not built yet: run `npm install` (or `npm run build`) in the ringkv folder.');
    process.exit(1);
  }
  throw error;
});
