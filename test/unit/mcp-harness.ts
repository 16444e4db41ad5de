/**
 * In-process MCP harness for the mcp-*.test.ts files: a real SDK Client talks to `createServer(env)`
 * over InMemoryTransport; every tool answer is JSON text, parsed here.
 *
 * The env handed to createServer is minimal (only AGENT_DISPATCH_CONFIG), and process.env's
 * AGENT_DISPATCH_CONFIG is stubbed to a *decoy* directory holding a broken agents.yaml: anything in
 * the server that reads process.env instead of the injected env then fails loudly.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vi } from 'vitest';
import { stringify } from 'yaml';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { LoggingMessageNotificationSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createServer } from '../../src/mcp/server.js';
import type { Sandbox } from '../../src/dispatch/dispatcher.js';
import type { ServerContext } from '../../src/mcp/context.js';
import { loadConfig } from '../../src/config/load.js';
import type { DispatchConfig } from '../../src/config/schema.js';

export interface ToolAnswer {
  result: CallToolResult;
  text: string;
  /** The parsed JSON payload (`any` on purpose: tests index into it freely). */
  json: any;
  isError: boolean;
}

export interface Harness {
  root: string;
  configDir: string;
  configPath: string;
  decoyConfigPath: string;
  client: Client;
  context: ServerContext;
  /** `data` of every notifications/message the server sent. */
  logs: string[];
  call(name: string, args?: Record<string, unknown>, options?: Parameters<Client['callTool']>[2]): Promise<ToolAnswer>;
  /** A fresh project directory under the temp root, with the given files (a trailing `/` makes a directory). */
  project(name: string, files?: Record<string, string | Buffer>): string;
  writeConfig(content: string | Buffer): void;
  configBytes(): Buffer | undefined;
  loadedConfig(): DispatchConfig;
  close(): Promise<void>;
}

export const DECOY_CONFIG = 'agents: [this decoy must never be read\n';

export async function startHarness(options: { sandbox?: Sandbox; env?: Record<string, string> } = {}): Promise<Harness> {
  const root = mkdtempSync(join(tmpdir(), 'ad-mcp-'));
  const configDir = join(root, 'config');
  const configPath = join(configDir, 'agents.yaml');
  const decoyDir = join(root, 'decoy');
  mkdirSync(decoyDir);
  const decoyConfigPath = join(decoyDir, 'agents.yaml');
  writeFileSync(decoyConfigPath, DECOY_CONFIG);
  vi.stubEnv('AGENT_DISPATCH_CONFIG', decoyConfigPath);

  const { server, context } = createServer({ ...options.env, AGENT_DISPATCH_CONFIG: configPath }, options.sandbox);
  const client = new Client({ name: 'mcp-test', version: '0.0.0' });
  const logs: string[] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    logs.push(String(n.params.data));
  });
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  await Promise.all([server.connect(serverTransport), client.connect(clientTransport)]);

  const harness: Harness = {
    root,
    configDir,
    configPath,
    decoyConfigPath,
    client,
    context,
    logs,
    async call(name, args = {}, callOptions) {
      const result = (await client.callTool({ name, arguments: args }, undefined, callOptions)) as CallToolResult;
      const first = result.content[0];
      if (!first || first.type !== 'text') throw new Error(`${name}: expected one text content item, got ${JSON.stringify(result)}`);
      let json: unknown;
      try {
        json = JSON.parse(first.text);
      } catch {
        throw new Error(`${name}: the answer is not JSON: ${first.text}`);
      }
      return { result, text: first.text, json, isError: result.isError === true };
    },
    project(name, files = {}) {
      const dir = join(root, 'projects', name);
      mkdirSync(dir, { recursive: true });
      for (const [file, content] of Object.entries(files)) {
        const path = join(dir, file);
        if (file.endsWith('/')) {
          mkdirSync(path, { recursive: true });
          continue;
        }
        mkdirSync(join(path, '..'), { recursive: true });
        writeFileSync(path, content);
      }
      return dir;
    },
    writeConfig(content) {
      mkdirSync(configDir, { recursive: true });
      writeFileSync(configPath, content);
    },
    configBytes() {
      return existsSync(configPath) ? readFileSync(configPath) : undefined;
    },
    loadedConfig() {
      const load = loadConfig(configPath);
      if (load.kind === 'invalid') throw new Error(`config is invalid: ${load.detail}`);
      return load.config;
    },
    async close() {
      await client.close();
      await server.close();
      // Nothing may ever have written to the decoy.
      if (readFileSync(decoyConfigPath, 'utf8') !== DECOY_CONFIG) throw new Error('the decoy config (process.env) was modified');
      rmSync(root, { recursive: true, force: true });
    },
  };
  return harness;
}

/** agents.yaml text for a plain object (agents / groups / settings). */
export function configYaml(data: Record<string, unknown>): string {
  return stringify(data);
}
