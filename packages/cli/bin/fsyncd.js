#!/usr/bin/env node
// Launcher for the `fsyncd` bin link: the CLI, bundled into one file at build time (scripts/bundle.mjs).
import '../dist/bundle/fsyncd.mjs'
