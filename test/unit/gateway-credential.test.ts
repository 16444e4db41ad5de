/**
 * Which Anthropic credential the egress gateway adds (gatewayCredential) and which variable the container holds
 * a placeholder in (serverCredentialName) must agree, in claude's own order of precedence; and the compiled
 * spec under `credentials: inject` never carries the real value. No Docker.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAgent, settingsSchema } from '../../src/config/schema.js';
import { compileSandbox, type CompiledSandbox } from '../../src/policy/compile.js';
import * as layout from '../../src/policy/layout.js';
import { loadPolicy } from '../../src/policy/load.js';
import { CREDENTIAL_ENV, policySchema, serverCredentialName, type Policy, type PolicyInput } from '../../src/policy/schema.js';
import { gatewayCredential } from '../../src/sandbox/gateway-pool.js';

const KEY = 'sk-ant-api03-REAL-KEY-never-in-a-spec-0001';
const AUTH = 'REAL-AUTH-TOKEN-never-in-a-spec-0002';
const OAUTH = 'sk-ant-oat01-REAL-OAUTH-never-in-a-spec-0003';
const PROXY = `http://127.0.0.1:${layout.GATEWAY_BRIDGE_PORT}`;

type Env = Record<string, string | undefined>;

// ---------------------------------------------------------------------------------------------------------------
describe('gatewayCredential and serverCredentialName agree, in claude’s order', () => {
  const cases: { name: string; env: Env; header?: 'x-api-key' | 'authorization'; value?: string; variable?: (typeof CREDENTIAL_ENV)[number] }[] = [
    { name: 'API key alone → x-api-key', env: { ANTHROPIC_API_KEY: KEY }, header: 'x-api-key', value: KEY, variable: 'ANTHROPIC_API_KEY' },
    { name: 'API key wins over both tokens', env: { ANTHROPIC_API_KEY: KEY, ANTHROPIC_AUTH_TOKEN: AUTH, CLAUDE_CODE_OAUTH_TOKEN: OAUTH }, header: 'x-api-key', value: KEY, variable: 'ANTHROPIC_API_KEY' },
    { name: 'auth token alone → Bearer', env: { ANTHROPIC_AUTH_TOKEN: AUTH }, header: 'authorization', value: `Bearer ${AUTH}`, variable: 'ANTHROPIC_AUTH_TOKEN' },
    { name: 'auth token wins over the OAuth token', env: { ANTHROPIC_AUTH_TOKEN: AUTH, CLAUDE_CODE_OAUTH_TOKEN: OAUTH }, header: 'authorization', value: `Bearer ${AUTH}`, variable: 'ANTHROPIC_AUTH_TOKEN' },
    { name: 'OAuth token alone → Bearer', env: { CLAUDE_CODE_OAUTH_TOKEN: OAUTH }, header: 'authorization', value: `Bearer ${OAUTH}`, variable: 'CLAUDE_CODE_OAUTH_TOKEN' },
    { name: 'an empty API key is ignored (auth token next)', env: { ANTHROPIC_API_KEY: '', ANTHROPIC_AUTH_TOKEN: AUTH }, header: 'authorization', value: `Bearer ${AUTH}`, variable: 'ANTHROPIC_AUTH_TOKEN' },
    { name: 'empty key and auth token are ignored (OAuth next)', env: { ANTHROPIC_API_KEY: '', ANTHROPIC_AUTH_TOKEN: '', CLAUDE_CODE_OAUTH_TOKEN: OAUTH }, header: 'authorization', value: `Bearer ${OAUTH}`, variable: 'CLAUDE_CODE_OAUTH_TOKEN' },
    { name: 'undefined values are ignored', env: { ANTHROPIC_API_KEY: undefined, CLAUDE_CODE_OAUTH_TOKEN: OAUTH }, header: 'authorization', value: `Bearer ${OAUTH}`, variable: 'CLAUDE_CODE_OAUTH_TOKEN' },
    { name: 'none → undefined', env: { PATH: '/usr/bin', ANTHROPIC_BASE_URL: 'https://api.anthropic.com' } },
    { name: 'all empty → undefined', env: { ANTHROPIC_API_KEY: '', ANTHROPIC_AUTH_TOKEN: '', CLAUDE_CODE_OAUTH_TOKEN: '' } },
  ];

  it.each(cases)('$name', ({ env, header, value, variable }) => {
    const credential = gatewayCredential(env as NodeJS.ProcessEnv);
    const name = serverCredentialName(env);
    if (header === undefined) {
      expect(credential).toBeUndefined();
      expect(name).toBeUndefined();
      return;
    }
    expect(credential).toEqual({ header, value });
    expect(name).toBe(variable);
    // the header follows the variable: x-api-key for the key, Bearer for either token
    expect(credential!.header).toBe(name === 'ANTHROPIC_API_KEY' ? 'x-api-key' : 'authorization');
    expect(credential!.value).toBe(name === 'ANTHROPIC_API_KEY' ? env[name] : `Bearer ${env[name!]}`);
  });

  it('unrelated variables never count as a credential', () => {
    const env = { ANTHROPIC_KEY: KEY, OPENAI_API_KEY: KEY, anthropic_api_key: KEY, CLAUDE_API_KEY: KEY };
    expect(gatewayCredential(env)).toBeUndefined();
    expect(serverCredentialName(env)).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('compileSandbox: the placeholder in the server’s variable, never the value', () => {
  let repo: string;
  let preset: Policy;

  beforeAll(() => {
    repo = mkdtempSync(join(tmpdir(), 'ad-cred-'));
    const load = loadPolicy('default', join(repo, 'no-config-here'));
    if (load.kind !== 'ok') throw new Error('default preset must load');
    preset = load.policy;
  });

  afterAll(() => {
    rmSync(repo, { recursive: true, force: true });
  });

  function policy(overrides: Partial<PolicyInput> = {}): Policy {
    return policySchema.parse({ ...preset, ...overrides });
  }

  function compile(hostEnv: Env, p: Policy = preset): CompiledSandbox {
    return compileSandbox({
      agentName: 'api',
      agent: parseAgent({ directory: repo }),
      settings: settingsSchema.parse({}),
      policy: p,
      policyRef: 'default',
      policyHash: 'abcdef0123456789',
      hostEnv: { PATH: '/host/bin', ...hostEnv },
      depth: 0,
      scope: join(repo, 'config'),
    });
  }

  function envOf(compiled: CompiledSandbox): Record<string, string> {
    return Object.fromEntries(compiled.container.Env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  }

  const credentialCases: { name: string; env: Env; variable: (typeof CREDENTIAL_ENV)[number] }[] = [
    { name: 'API key', env: { ANTHROPIC_API_KEY: KEY }, variable: 'ANTHROPIC_API_KEY' },
    { name: 'all three (the key wins)', env: { ANTHROPIC_API_KEY: KEY, ANTHROPIC_AUTH_TOKEN: AUTH, CLAUDE_CODE_OAUTH_TOKEN: OAUTH }, variable: 'ANTHROPIC_API_KEY' },
    { name: 'auth token', env: { ANTHROPIC_AUTH_TOKEN: AUTH }, variable: 'ANTHROPIC_AUTH_TOKEN' },
    { name: 'auth and OAuth token (auth wins)', env: { ANTHROPIC_AUTH_TOKEN: AUTH, CLAUDE_CODE_OAUTH_TOKEN: OAUTH }, variable: 'ANTHROPIC_AUTH_TOKEN' },
    { name: 'OAuth token', env: { CLAUDE_CODE_OAUTH_TOKEN: OAUTH }, variable: 'CLAUDE_CODE_OAUTH_TOKEN' },
    { name: 'OAuth token with an empty key', env: { ANTHROPIC_API_KEY: '', CLAUDE_CODE_OAUTH_TOKEN: OAUTH }, variable: 'CLAUDE_CODE_OAUTH_TOKEN' },
  ];

  it.each(credentialCases)('inject, $name: the placeholder in $variable only, and no real value anywhere', ({ env, variable }) => {
    const compiled = compile(env);
    const containerEnv = envOf(compiled);
    expect(containerEnv[variable]).toBe(layout.CREDENTIAL_PLACEHOLDER);
    for (const other of CREDENTIAL_ENV) if (other !== variable) expect(containerEnv).not.toHaveProperty(other);
    // the same variable the gateway takes its credential from
    expect(serverCredentialName(env)).toBe(variable);
    const text = JSON.stringify(compiled);
    for (const secret of [KEY, AUTH, OAUTH]) expect(text).not.toContain(secret);
    // the managed settings never carry a credential, not even the placeholder
    expect(JSON.stringify(compiled.managedSettings)).not.toContain(layout.CREDENTIAL_PLACEHOLDER);
    expect(compiled.envNames).toContain(variable);
  });

  it('inject with no credential on the server: the placeholder in ANTHROPIC_API_KEY (the gateway then refuses to start)', () => {
    const compiled = compile({});
    expect(envOf(compiled)['ANTHROPIC_API_KEY']).toBe(layout.CREDENTIAL_PLACEHOLDER);
    expect(gatewayCredential({})).toBeUndefined();
  });

  it.each(credentialCases)('gateway mode, $name: the proxy environment points at the bridge, and the socket volume is read-only', ({ env }) => {
    for (const p of [preset, policy({ network: { mode: 'gateway', allow: ['registry.npmjs.org'] } })]) {
      const compiled = compile({ ...env, ANTHROPIC_BASE_URL: 'https://corp-proxy.example' }, p);
      expect(envOf(compiled)).toMatchObject({
        HTTPS_PROXY: PROXY,
        https_proxy: PROXY,
        HTTP_PROXY: PROXY,
        http_proxy: PROXY,
        NO_PROXY: '127.0.0.1,localhost',
        no_proxy: '127.0.0.1,localhost',
        ANTHROPIC_BASE_URL: PROXY,
      });
      expect(compiled.container.HostConfig.NetworkMode).toBe('none');
      const socket = compiled.container.HostConfig.Mounts.filter((m) => m.Target === layout.GATEWAY_SOCKET_DIR);
      expect(socket).toHaveLength(1);
      expect(socket[0]).toMatchObject({ Type: 'volume', ReadOnly: true, Source: layout.gatewayVolume('api', layout.volumeScope(join(repo, 'config'), repo)) });
      expect(compiled.mounts.find((m) => m.target === layout.GATEWAY_SOCKET_DIR)).toMatchObject({ kind: 'volume', mode: 'ro' });
      // the managed settings pin the bridge too, so a repo's settings cannot point claude elsewhere
      expect(compiled.managedSettings.env).toMatchObject({ ANTHROPIC_BASE_URL: PROXY, HTTPS_PROXY: PROXY, HTTP_PROXY: PROXY });
    }
  });

  it('gateway mode with credentials: env: the proxy environment is set as well (the real key is the policy’s explicit choice)', () => {
    const compiled = compile({ ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: 'https://corp-proxy.example' }, policy({ credentials: 'env' }));
    expect(envOf(compiled)).toMatchObject({ ANTHROPIC_API_KEY: KEY, HTTPS_PROXY: PROXY, HTTP_PROXY: PROXY, https_proxy: PROXY, http_proxy: PROXY, ANTHROPIC_BASE_URL: PROXY, NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost' });
    expect(compiled.container.HostConfig.Mounts.find((m) => m.Target === layout.GATEWAY_SOCKET_DIR)?.ReadOnly).toBe(true);
    // the key is in the container env but never in the managed settings file
    expect(JSON.stringify(compiled.managedSettings)).not.toContain(KEY);
  });

  it('open mode: no proxy environment and no socket volume', () => {
    const compiled = compile({ ANTHROPIC_API_KEY: KEY }, policy({ network: { mode: 'open', allow: [] }, credentials: 'env' }));
    const env = envOf(compiled);
    for (const name of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy']) expect(env).not.toHaveProperty(name);
    expect(compiled.container.HostConfig.Mounts.map((m) => m.Target)).not.toContain(layout.GATEWAY_SOCKET_DIR);
  });
});
