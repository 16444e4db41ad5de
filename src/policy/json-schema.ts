import { z } from 'zod';
import { policySchema } from './schema.js';

export const POLICY_SCHEMA_ID = 'urn:agent-dispatch:policy:v1';

/**
 * The JSON Schema of a policy file, for editors (`# yaml-language-server: $schema=...`).
 * Generated from the zod schema — the only source of truth — in input form, so defaulted keys are optional.
 * `policies/policy.schema.json` is this object, written by `npm run schema`; a unit test fails when it is stale.
 */
export function policyJsonSchema(): Record<string, unknown> {
  const generated = z.toJSONSchema(policySchema, { io: 'input', target: 'draft-2020-12' }) as Record<string, unknown>;
  const { $schema, ...rest } = generated;
  return {
    $schema,
    $id: POLICY_SCHEMA_ID,
    title: 'agent-dispatch sandbox policy',
    ...rest,
  };
}
