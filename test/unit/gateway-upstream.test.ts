import { describe, expect, it } from 'vitest';
import { upstreamProblem } from '../../src/sandbox/gateway-pool.js';

describe('the upstream the gateway forwards the Anthropic API to', () => {
  it.each(['https://api.anthropic.com', 'http://172.17.0.1:4010', 'https://proxy.example.com/anthropic', 'http://[fd00::1]:8080'])('%s is usable', (url) => {
    expect(upstreamProblem(url)).toBeUndefined();
  });

  it.each(['http://localhost:4010', 'http://127.0.0.1:4010', 'http://127.1.2.3', 'http://[::1]:4010', 'http://api.localhost', 'http://0.0.0.0:80'])(
    '%s is the host loopback, which the gateway container cannot reach',
    (url) => {
      expect(upstreamProblem(url)).toMatch(/loopback, which the gateway container cannot reach/);
    },
  );

  it('refuses a URL with credentials in it, naming where they go instead', () => {
    expect(upstreamProblem('https://user:secret@proxy.example.com')).toMatch(/credentials in it .*ANTHROPIC_AUTH_TOKEN/);
    expect(upstreamProblem('https://user:secret@proxy.example.com')).not.toContain('secret');
  });

  it('refuses what is not an http(s) URL', () => {
    expect(upstreamProblem('api.anthropic.com')).toMatch(/not a URL/);
    expect(upstreamProblem('ftp://api.anthropic.com')).toMatch(/uses ftp:/);
  });
});
