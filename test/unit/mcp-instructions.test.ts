import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { userCaller } from '../../src/core/caller.js';
import { createServer } from '../../src/mcp/server.js';
import { startHarness, type Harness } from './mcp-harness.js';

/** The original's 21 tools (reference §1.4): the instructions teach each one. */
const ORIGINAL_TOOLS = [
  'list_agents', 'inspect_agent', 'list_groups', 'inspect_group', 'dispatch', 'dispatch_session', 'dispatch_parallel',
  'dispatch_stream', 'dispatch_dialogue', 'add_agent', 'remove_agent', 'update_agent', 'dispatch_async', 'dispatch_status',
  'dispatch_wait', 'dispatch_cancel', 'dispatch_jobs', 'fetch_result', 'dispatch_gc', 'cache_stats', 'cache_clear',
];

let h: Harness;

beforeEach(async () => {
  h = await startHarness();
});

afterEach(async () => {
  await h.close();
});

/** Whole-word mention, so `dispatch` is not found inside `dispatch_session` alone. */
function mentions(text: string, tool: string): boolean {
  return new RegExp(`(^|[^a-z_])${tool}([^a-z_]|$)`).test(text);
}

describe('server instructions', () => {
  it('mention every registered tool by name', async () => {
    const instructions = h.client.getInstructions() ?? '';
    const { tools } = await h.client.listTools();
    const missing = tools.map((t) => t.name).filter((name) => !mentions(instructions, name));
    expect(missing).toEqual([]);
  });

  it("mention each of the original's 21 tools", () => {
    const instructions = h.client.getInstructions() ?? '';
    expect(ORIGINAL_TOOLS.filter((name) => !mentions(instructions, name))).toEqual([]);
  });

  it('teach the timeout resume recipe: dispatch_session with the timed-out session_id', () => {
    const instructions = h.client.getInstructions() ?? '';
    expect(instructions).toContain("dispatch_session(agent, 'Continue where you left off', session_id=");
  });

  it('cover the sections a calling model needs, and the sandbox facts', () => {
    const instructions = h.client.getInstructions() ?? '';
    for (const heading of ['WHEN TO DISPATCH', 'HOW TO USE', 'GROUPS', 'TIMEOUTS', 'PERMISSIONS', 'ASYNC DISPATCH', 'SAVING CONTEXT', 'MANAGING AGENTS']) {
      expect(instructions).toContain(`${heading}:`);
    }
    expect(instructions).toContain('return_ref=true');
    expect(instructions).toContain('caller=');
    expect(instructions).toContain('goal=');
    expect(instructions).toMatch(/fresh, hardened Docker container/);
    expect(instructions).toMatch(/repo: overlay[^.]*git patch/);
    expect(instructions).toMatch(/egress/);
    expect(instructions).toContain('settings.mcp_policy_changes');
  });
});

describe('server instructions for an HTTP user of the shared service', () => {
  it('tell the user what they see and that admins manage agents; the local caller is not told', async () => {
    const { server } = createServer({ AGENT_DISPATCH_CONFIG: '/nonexistent/agents.yaml' }, undefined, { caller: userCaller('alice') });
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await server.connect(serverSide);
    const client = new Client({ name: 'instructions-test', version: '0' });
    await client.connect(clientSide);
    const instructions = client.getInstructions() ?? '';
    await client.close();
    await server.close();
    expect(instructions).toContain('SHARED SERVICE:');
    expect(instructions).toMatch(/only the agents granted to you/);
    expect(instructions).toMatch(/FORBIDDEN/);
    expect(h.client.getInstructions() ?? '').not.toContain('SHARED SERVICE:');
  });
});
