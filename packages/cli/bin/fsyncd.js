#!/usr/bin/env node
// Thin launcher so the bin link exists before the first build; the CLI lives in src/bin.ts.
import '../dist/bin.js'
