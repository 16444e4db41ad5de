/**
 * What the hostile-agent suite drives and measures from the host: the BUILT server over stdio (a real MCP
 * client), services on the bridge that count every request they get, a sidecar container, the server's
 * responsiveness while a dispatch misbehaves, and the containers a dispatch leaves.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type Docker from 'dockerode';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CallToolResultSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { GATEWAY_ROLE_LABEL } from '../../src/sandbox/gateway-container.js';
import { LABELS } from '../../src/sandbox/owner.js';
import { CLI } from '../helpers/dispatch-fixture.js';
import { BUSYBOX_IMAGE, TEST_LABEL, testLabels } from '../helpers/docker.js';

export interface ToolAnswer {
  isError: boolean;
  json: Record<string, any>;
  ms: number;
}

export interface McpServerProcess {
  call(name: string, args: Record<string, unknown>, timeoutMs?: number): Promise<ToolAnswer>;
  pid: number;
  /** The server's resident memory, from /proc (bytes). */
  rssBytes(): number;
  alive(): boolean;
  stderr(): string;
  close(): Promise<void>;
}

export async function startServer(env: NodeJS.ProcessEnv, cwd: string): Promise<McpServerProcess> {
  const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'serve'], env: env as Record<string, string>, cwd, stderr: 'pipe' });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-20_000);
  });
  const client = new Client({ name: 'escape-suite', version: '0.0.0' });
  await client.connect(transport);
  const pid = transport.pid!;
  return {
    pid,
    async call(name, args, timeoutMs = 180_000) {
      const started = Date.now();
      const result = (await client.callTool({ name, arguments: args }, CallToolResultSchema, { timeout: timeoutMs, resetTimeoutOnProgress: true })) as CallToolResult;
      const first = result.content[0];
      const text = first?.type === 'text' ? first.text : JSON.stringify(result);
      let json: Record<string, any>;
      try {
        json = JSON.parse(text) as Record<string, any>;
      } catch {
        json = { text };
      }
      return { isError: result.isError === true, json, ms: Date.now() - started };
    },
    rssBytes() {
      const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      return match ? Number(match[1]) * 1024 : 0;
    },
    alive() {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    },
    stderr: () => stderr,
    close: () => client.close(),
  };
}

export interface Responsiveness {
  /** The slowest answer to a cheap MCP call (list_agents) while the work ran, ms; Infinity if one failed. */
  worstMs: number;
  samples: number;
  /** The server's largest resident memory seen meanwhile (bytes). */
  peakRss: number;
}

/**
 * Run `work` while asking the server a cheap question every `everyMs`: how long the slowest answer took, and
 * the server's peak memory. A call that errors or never answers counts as Infinity.
 */
export async function whileResponsive<T>(server: McpServerProcess, work: () => Promise<T>, everyMs = 500): Promise<{ value: T; health: Responsiveness }> {
  const health: Responsiveness = { worstMs: 0, samples: 0, peakRss: server.rssBytes() };
  let done = false;
  const sampler = (async () => {
    while (!done) {
      const answer = await server.call('list_agents', {}, 30_000).catch(() => undefined);
      health.samples++;
      health.worstMs = Math.max(health.worstMs, answer && !answer.isError ? answer.ms : Infinity);
      if (server.alive()) health.peakRss = Math.max(health.peakRss, server.rssBytes());
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  try {
    const value = await work();
    return { value, health };
  } finally {
    done = true;
    await sampler;
  }
}

export function describeHealth(h: Responsiveness): string {
  return `server answered ${h.samples} list_agents, slowest ${Number.isFinite(h.worstMs) ? `${h.worstMs} ms` : 'never'}, peak RSS ${Math.round(h.peakRss / 2 ** 20)} MiB`;
}

/** An HTTP service on the bridge (bound to 0.0.0.0) that counts requests, answering `body`. */
export interface CountingService {
  port: number;
  hits: string[];
  close(): Promise<void>;
}

export function countingService(body: string): Promise<CountingService> {
  const hits: string[] = [];
  const server: Server = createServer((req, res) => {
    hits.push(`${req.method} ${req.url} host=${req.headers.host ?? ''}`);
    res.end(body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '0.0.0.0', () => {
      resolve({
        port: (server.address() as AddressInfo).port,
        hits,
        close: () =>
          new Promise((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

/** Another container on the default bridge, listening on 8080 (busybox nc), labelled for this run. */
export async function startSidecar(docker: Docker, runId: string): Promise<{ ip: string; remove(): Promise<void> }> {
  const container = await docker.createContainer({
    Image: BUSYBOX_IMAGE,
    Cmd: ['sh', '-c', 'while true; do echo sidecar | nc -l -p 8080 || sleep 1; done'],
    Labels: testLabels(runId),
    HostConfig: { AutoRemove: false },
  });
  await container.start();
  const info = await container.inspect();
  const ip = Object.values(info.NetworkSettings.Networks)[0]?.IPAddress ?? '';
  return { ip, remove: () => container.remove({ force: true, v: true }).then(() => undefined, () => undefined) };
}

/**
 * The agent containers of `agent` (not its gateway) that exist now and were created before `endedAt`: what a
 * dispatch that ended then left behind. A warm sandbox the pool starts after the dispatch is not counted.
 */
export async function containersLeftBy(docker: Docker, runId: string, agent: string, endedAt: number): Promise<string[]> {
  const list = await docker.listContainers({ all: true, filters: JSON.stringify({ label: agentContainers(runId, agent, 'dispatch') }) });
  const left: string[] = [];
  for (const c of list) {
    const info = await docker.getContainer(c.Id).inspect().catch(() => undefined);
    if (info && Date.parse(info.Created) < endedAt) left.push(`${c.Id.slice(0, 12)} (${c.State})`);
  }
  return left;
}

export interface Usage {
  /** The most processes and memory any of the sampled containers had while `work` ran. */
  peakPids: number;
  peakMemory: number;
  pidsLimit: number;
  memoryLimit: number;
  samples: number;
}

/** The label filter of `agent`'s dispatch containers, or of its egress gateway. */
export function agentContainers(runId: string, agent: string, which: 'dispatch' | 'gateway'): string[] {
  return [`${TEST_LABEL}=${runId}`, `${LABELS.agent}=${agent}`, which === 'dispatch' ? LABELS.job : `${GATEWAY_ROLE_LABEL}=gateway`];
}

/** Run `work` while sampling the engine's stats of the running containers that carry `labels`, about every second. */
export async function whileSampled<T>(docker: Docker, labels: string[], work: () => Promise<T>): Promise<{ value: T; usage: Usage }> {
  const usage: Usage = { peakPids: 0, peakMemory: 0, pidsLimit: 0, memoryLimit: 0, samples: 0 };
  let done = false;
  const sampler = (async () => {
    while (!done) {
      const running = await docker
        .listContainers({ filters: JSON.stringify({ label: labels, status: ['running'] }) })
        .catch(() => []);
      for (const c of running) {
        const container = docker.getContainer(c.Id);
        const [stats, info] = await Promise.all([
          container.stats({ stream: false, 'one-shot': true } as { stream: false }).catch(() => undefined),
          container.inspect().catch(() => undefined),
        ]);
        if (!stats || !info) continue;
        usage.samples++;
        usage.peakPids = Math.max(usage.peakPids, stats.pids_stats?.current ?? 0);
        usage.peakMemory = Math.max(usage.peakMemory, stats.memory_stats?.usage ?? 0);
        usage.pidsLimit = info.HostConfig.PidsLimit ?? 0;
        usage.memoryLimit = info.HostConfig.Memory ?? 0;
      }
      await new Promise((r) => setTimeout(r, 700));
    }
  })();
  try {
    return { value: await work(), usage };
  } finally {
    done = true;
    await sampler;
  }
}

export function describeUsage(u: Usage): string {
  if (u.samples === 0) return 'no stats sample taken';
  return `peak ${u.peakPids}/${u.pidsLimit} pids, ${Math.round(u.peakMemory / 2 ** 20)}/${Math.round(u.memoryLimit / 2 ** 20)} MiB (${u.samples} samples)`;
}
