#!/usr/bin/env node
// Launcher for the `fsyncd` bin link: the CLI, bundled into one ES module at build time
// (scripts/bundle.mjs).
//
// CommonJS (see package.json here), so that it runs before anything starts libuv's thread pool,
// whose size is read once, when it starts: in an ES module entry, Node's loader has started it
// already. fsyncd's pool work is mostly waiting on the disk (a server creates and fsyncs every
// file), and the default 4 threads leave the disk idle: with 16, 20,000 small files reached a
// fresh ext4 destination in 4.5-4.7 s instead of 5.9-6.2 s. The environment's setting wins.
// (A loader hook in NODE_OPTIONS, such as tap's coverage, starts the pool first: 4 threads then.)
'use strict'
if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = '16' // set and not empty: theirs
import('../dist/bundle/fsyncd.mjs')
