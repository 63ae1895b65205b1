#!/bin/sh
':' //; exec env -u NODE_EXTRA_CA_CERTS node "$0" "$@"
// Launcher for the `fsyncd` bin link: the CLI, bundled into one ES module at build time
// (scripts/bundle.mjs).
//
// Run as a program, this file is a shell script first (line 2; to JavaScript it is a string and a
// comment): it starts Node without NODE_EXTRA_CA_CERTS. Node reads and parses that file of
// certificates when it starts, before any JavaScript: 35-40 ms of every run on a machine that sets
// it (this one does), for nothing: fsyncd checks no certificate against a CA (TLS is keyed by the
// token). `node fsyncd.js` skips the shell line and keeps the environment as it is.
//
// CommonJS (see package.json here), so that it runs before anything starts libuv's thread pool,
// whose size is read once, when it starts: in an ES module entry, Node's loader has started it
// already. The environment's setting wins. (A loader hook in NODE_OPTIONS, such as tap's
// coverage, starts the pool first: 4 threads then.)
// - `serve`: 64 threads. Its pool work is fsync, and the filesystem commits the fsyncs waiting
//   together: the more wait, the fewer commits. 20,000 small files reached an ext4 destination
//   with a journal in 3.1-3.4 s instead of 3.8-3.9 s with 16 threads (4 threads: slower still).
// - the client: 16. Its pool work is compression and reads; 64 gained nothing.
// The command is the first argument that is neither an option nor the value of one of the
// options that take a value and may come before it (bin.ts: --log-level, --token-file).
const args = process.argv.slice(2)
let command
for (let i = 0; i < args.length && command === undefined; i++) {
  if (args[i] === '--log-level' || args[i] === '--token-file') i++
  else if (!args[i].startsWith('-')) command = args[i]
}
if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = command === 'serve' ? '64' : '16' // set and not empty: theirs
import('../dist/bundle/fsyncd.mjs')
