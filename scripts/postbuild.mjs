#!/usr/bin/env node
// After `tsc`: make the CLI entry point executable (npm links it as a bin). Nothing else.
import { chmodSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
if (existsSync(cli)) chmodSync(cli, 0o755);
