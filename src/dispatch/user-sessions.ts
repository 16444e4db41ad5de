import { CLAUDE_SESSIONS_DIR } from '../policy/layout.js';
import type { CompiledSandbox } from '../policy/compile.js';

/**
 * An HTTP user's own Claude session volume for an agent. Two users granted one agent must not share it: it
 * holds every transcript (each task and answer, named by session id), so a shared volume would let one user's
 * dispatch read the other's conversations and resume them with dispatch_session. `.user.` cannot occur in the
 * base name (agent names and scopes have no dots), so no user's volume can imitate another's or the local one.
 * The volume keeps the agent's labels: removing the agent removes every user's.
 */
export function userSessionVolume(base: string, user: string): string {
  return `${base}.user.${user}`;
}

/** The compiled sandbox with its session volume swapped for `user`'s (unchanged for the local caller). */
export function withUserSessions(sandbox: CompiledSandbox, user: string | undefined): CompiledSandbox {
  if (user === undefined) return sandbox;
  const own = (target: string, source: string) => (target === CLAUDE_SESSIONS_DIR ? userSessionVolume(source, user) : source);
  return {
    ...sandbox,
    container: {
      ...sandbox.container,
      HostConfig: {
        ...sandbox.container.HostConfig,
        Mounts: sandbox.container.HostConfig.Mounts.map((m) => (m.Type === 'volume' && m.Source ? { ...m, Source: own(m.Target, m.Source) } : m)),
      },
    },
    mounts: sandbox.mounts.map((m) => (m.kind === 'volume' ? { ...m, source: own(m.target, m.source) } : m)),
  };
}
