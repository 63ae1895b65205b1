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
// already. fsyncd's pool work is mostly waiting on the disk (a server creates and fsyncs every
// file), and the default 4 threads leave the disk idle: with 16, 20,000 small files reached a
// fresh ext4 destination in 4.5-4.7 s instead of 5.9-6.2 s. The environment's setting wins.
// (A loader hook in NODE_OPTIONS, such as tap's coverage, starts the pool first: 4 threads then.)
if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = '16' // set and not empty: theirs
import('../dist/bundle/fsyncd.mjs')
