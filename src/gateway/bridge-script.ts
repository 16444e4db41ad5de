import { BRIDGE_ENV, TOKEN_PREFIX } from './protocol.js';

/**
 * The bridge inside an agent container (which has no network): it listens on 127.0.0.1:3128 (the agent's
 * HTTP(S)_PROXY and ANTHROPIC_BASE_URL) and pipes every TCP connection to the gateway's Unix socket, after the
 * dispatch's token line. Then it runs the agent command with the socket and token removed from its
 * environment, forwards signals to it and exits with its status (128 + signal when it was killed).
 * Exit 125: the bridge itself could not start.
 *
 * CommonJS, run as `node -e BRIDGE_SCRIPT -- cmd args...`; there process.argv is [node, cmd, args...].
 */
export const BRIDGE_SCRIPT = String.raw`'use strict';
const net = require('net');
const os = require('os');
const { spawn } = require('child_process');
const fail = (msg) => { process.stderr.write('agent-dispatch bridge: ' + msg + '\n'); process.exit(125); };
const socketPath = process.env.${BRIDGE_ENV.socket};
const token = process.env.${BRIDGE_ENV.token};
delete process.env.${BRIDGE_ENV.socket};
delete process.env.${BRIDGE_ENV.token};
const port = Number(process.env.AGENT_DISPATCH_BRIDGE_PORT || 3128);
const cmd = process.argv.slice(1);
if (!socketPath || !token) fail('${BRIDGE_ENV.socket} and ${BRIDGE_ENV.token} must be set');
if (cmd.length === 0) fail('no command to run (usage: node -e SCRIPT -- cmd args...)');
const server = net.createServer({ allowHalfOpen: true }, (client) => {
  const gateway = net.connect({ path: socketPath, allowHalfOpen: true });
  gateway.write(${JSON.stringify(TOKEN_PREFIX)} + token + '\n');
  client.pipe(gateway);
  gateway.pipe(client);
  client.on('error', () => gateway.destroy());
  gateway.on('error', () => client.destroy());
  client.on('close', () => gateway.destroy());
  gateway.on('close', () => client.end());
});
server.on('error', (err) => fail('cannot listen on 127.0.0.1:' + port + ': ' + err.message));
server.listen(port, '127.0.0.1', () => {
  const child = spawn(cmd[0], cmd.slice(1), { stdio: 'inherit', env: process.env });
  child.on('error', (err) => fail('cannot run ' + cmd[0] + ': ' + err.message));
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code !== null ? code : 128 + (os.constants.signals[signal] || 0)));
});
`;

/** The agent command wrapped in the bridge. */
export function bridgeCommand(cmd: string[]): string[] {
  return ['node', '-e', BRIDGE_SCRIPT, '--', ...cmd];
}
