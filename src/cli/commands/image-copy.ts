import { readConfig } from '../../config/store.js';
import { effectiveEngineSpec, engineLabel, parseEngineSpec, type EngineSpec } from '../../config/engine-spec.js';
import { requireAgent } from '../../core/agents.js';
import { resolveAgentPolicy } from '../../policy/resolve.js';
import { copyImagesToEngine } from '../../sandbox/engine-images.js';
import { gatewayImage } from '../../sandbox/gateway-image.js';
import { DEFAULT_AGENT_IMAGE } from '../../sandbox/image.js';
import { parse, str, UsageError } from '../args.js';
import { synopsis, type CommandSpec } from '../spec.js';
import { out } from '../output.js';

export const copySpec: CommandSpec = {
  name: 'image copy',
  summary: "Copy images from this machine's engine to another engine (docker save | docker load; never a pull)",
  args: [{ name: 'IMAGE', optional: true, variadic: true, description: "images to copy (default: the agent's image and the gateway image)" }],
  options: {
    agent: { type: 'string', value: 'NAME', description: "to this agent's engine (agents.<name>.engine, else settings.engine)" },
    engine: { type: 'string', value: 'SPEC', description: 'to this engine: unix:///path, ssh://user@host[:port] or tcp://127.0.0.1:port' },
    'tls-cert-dir': { type: 'string', value: 'DIR', description: 'with --engine tcp://host:port: ca.pem, cert.pem and key.pem for TLS' },
  },
  notes: ['A remote engine never pulls and never builds: give it the images this machine has. Images it already holds (same id) are skipped.'],
};

/** `image copy [IMAGE...] (--agent NAME | --engine SPEC [--tls-cert-dir DIR])`. */
export async function imageCopy(argv: string[]): Promise<number> {
  const p = parse(copySpec, argv);
  const agentName = str(p, 'agent');
  const engineText = str(p, 'engine');
  const certDir = str(p, 'tls-cert-dir');
  if ((agentName === undefined) === (engineText === undefined) || (certDir !== undefined && engineText === undefined)) {
    throw new UsageError(`image copy needs --agent NAME or --engine SPEC (--tls-cert-dir only with --engine). usage: ${synopsis(copySpec)}`);
  }
  let spec: EngineSpec | undefined;
  let images = p.positionals;
  if (agentName !== undefined) {
    const config = readConfig();
    const agent = requireAgent(config, agentName, "Run 'agent-dispatch list' to see agents.");
    spec = effectiveEngineSpec(agent, config.settings);
    if (spec === undefined) throw new UsageError(`Agent '${agentName}' runs on this machine's engine (no engine in agents.yaml): there is nothing to copy.`);
    if (images.length === 0) {
      const report = resolveAgentPolicy(config, agentName);
      if (report.load.kind !== 'ok') throw new UsageError(`Agent '${agentName}': ${report.findings[0]?.message ?? 'its policy does not load'}; name the images to copy.`);
      images = [report.load.policy.image, ...(report.load.policy.network.mode === 'gateway' ? [gatewayImage(process.env)] : [])];
    }
  } else {
    spec = certDir !== undefined ? { host: engineText!, tls_cert_dir: certDir } : engineText!;
    if (images.length === 0) images = [DEFAULT_AGENT_IMAGE, gatewayImage(process.env)];
  }
  const parsed = parseEngineSpec(spec);
  if (!parsed.ok) throw new UsageError(parsed.message);
  const target = `engine ${engineLabel(parsed.engine)}`;
  await copyImagesToEngine(spec, images, process.env, target, (copy) => {
    const id = copy.id.replace(/^sha256:/, '').slice(0, 12);
    if (copy.status === 'present') out(`${copy.image} (${id}) already on ${target}`);
    else out(`Copied ${copy.image} (${id}, ${Math.round(copy.bytes / 1048576)} MB) to ${target} in ${(copy.ms / 1000).toFixed(1)}s`);
  });
  return 0;
}
