#!/usr/bin/env node
// Writes policies/policy.schema.json from the zod policy schema (the only source of truth).
// Needs the built output: run `npm run build` first (`npm run schema` does not build).
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = new URL('../', import.meta.url);
let policyJsonSchema;
try {
  ({ policyJsonSchema } = await import(new URL('dist/policy/json-schema.js', root).href));
} catch (error) {
  console.error(`Cannot load dist/policy/json-schema.js (${error.message}). Run 'npm run build' first.`);
  process.exit(1);
}
const target = fileURLToPath(new URL('policies/policy.schema.json', root));
writeFileSync(target, `${JSON.stringify(policyJsonSchema(), null, 2)}\n`);
console.log(`wrote ${target}`);
