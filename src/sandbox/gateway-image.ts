/**
 * Build the egress gateway image (images/gateway/Dockerfile) from a local base, like the agent image: the
 * build context is the Dockerfile plus the compiled gateway program (dist/gateway/*.js, which imports node
 * builtins only, so the image needs no node_modules). Nothing is ever pulled.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import tar from 'tar-fs';
import { AppError } from '../errors.js';
import { GATEWAY_PROTOCOL } from '../gateway/protocol.js';
import { DEFAULT_BASE_IMAGE, requireLocalBase, runImageBuild, type StepLog } from './image.js';

export const DEFAULT_GATEWAY_IMAGE = 'agent-dispatch/gateway:latest';
/** The image's protocol label: a gateway image speaking another protocol is refused, with the command to rebuild. */
export const GATEWAY_PROTOCOL_LABEL = 'agent-dispatch.gateway-protocol';
export const GATEWAY_IMAGE_DIR = fileURLToPath(new URL('../../images/gateway/', import.meta.url));
/** The compiled gateway program: dist/gateway, from both src/sandbox (tests) and dist/sandbox. */
export const GATEWAY_CODE_DIR = fileURLToPath(new URL('../../dist/gateway/', import.meta.url));

export interface BuildGatewayImageOptions {
  base?: string;
  tag?: string;
  noCache?: boolean;
  labels?: Record<string, string>;
  onProgress?: (line: string) => void;
  docker?: Docker;
}

/** The gateway image a server uses: AGENT_DISPATCH_GATEWAY_IMAGE, else DEFAULT_GATEWAY_IMAGE. */
export function gatewayImage(env: NodeJS.ProcessEnv): string {
  return env['AGENT_DISPATCH_GATEWAY_IMAGE'] || DEFAULT_GATEWAY_IMAGE;
}

export function gatewayBuildHint(image: string): string {
  const tag = image === DEFAULT_GATEWAY_IMAGE ? '' : ` --gateway-tag ${image}`;
  return `Build it: agent-dispatch image build${tag} (it builds the agent and the gateway image from a local base)`;
}

/** The gateway program's files, by name: what goes into the image. */
export function gatewayProgram(): Map<string, Buffer> {
  if (!existsSync(join(GATEWAY_CODE_DIR, 'main.js'))) {
    throw new AppError('INTERNAL', `The compiled gateway program is missing: ${join(GATEWAY_CODE_DIR, 'main.js')}`, {
      hint: 'Run npm run build in the agent-dispatch checkout (or reinstall it), then retry.',
    });
  }
  const files = new Map<string, Buffer>();
  for (const name of readdirSync(GATEWAY_CODE_DIR).sort()) {
    if (name.endsWith('.js')) files.set(name, readFileSync(join(GATEWAY_CODE_DIR, name)));
  }
  return files;
}

/** A short hash of the Dockerfile and the program: the test setup rebuilds its image when it changes. */
export function gatewayContextHash(): string {
  const hash = createHash('sha256').update(readFileSync(join(GATEWAY_IMAGE_DIR, 'Dockerfile')));
  for (const [name, content] of gatewayProgram()) hash.update(name).update(content);
  return hash.digest('hex').slice(0, 16);
}

export async function buildGatewayImage(options: BuildGatewayImageOptions = {}): Promise<{ imageId: string; tag: string }> {
  const base = options.base ?? DEFAULT_BASE_IMAGE;
  const tag = options.tag ?? DEFAULT_GATEWAY_IMAGE;
  const program = gatewayProgram();
  const docker = options.docker ?? new Docker();
  await requireLocalBase(docker, base);
  const imageId = await runImageBuild(docker, context(program), {
    tag,
    buildargs: { BASE: base },
    labels: { ...options.labels, [GATEWAY_PROTOCOL_LABEL]: String(GATEWAY_PROTOCOL) },
    noCache: options.noCache === true,
    onProgress: options.onProgress,
    failure: (failure: string, steps: StepLog) =>
      new AppError('IMAGE_BUILD_FAILED', [`The build of ${tag} failed at ${steps.step ?? 'before the first step'}: ${failure}`, ...steps.tail(40).map((l) => `  ${l}`)].join('\n'), {
        hint: `The gateway image needs node in the base (bash scripts/base-images.sh builds ${DEFAULT_BASE_IMAGE}).`,
      }),
  });
  return { imageId, tag };
}

/** images/gateway plus gateway/*.js and a package.json that makes them ES modules. */
function context(program: Map<string, Buffer>): NodeJS.ReadableStream {
  const pack = tar.pack(GATEWAY_IMAGE_DIR, {
    map: (header) => ({ ...header, uid: 0, gid: 0 }),
    finalize: false,
    finish(p) {
      const mtime = new Date();
      const files: [string, Buffer][] = [['package.json', Buffer.from('{"type":"module"}\n')], ...program];
      const next = (i: number): void => {
        const file = files[i];
        if (!file) return void p.finalize();
        p.entry({ name: `gateway/${file[0]}`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime }, file[1], (error) => (error ? p.destroy(error) : next(i + 1)));
      };
      p.entry({ name: 'gateway/', type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime }, (error) => (error ? p.destroy(error) : next(0)));
    },
  });
  return pack as unknown as NodeJS.ReadableStream;
}
