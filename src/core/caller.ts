/**
 * Who is calling a tool. Stdio serves the one local user who started it (everything, as before the HTTP
 * service existed); over HTTP each request carries a user's token, and that user sees only the agents granted
 * to them and only their own jobs (src/core/access.ts decides).
 */
export type Caller = { readonly kind: 'local' } | { readonly kind: 'user'; readonly user: string };

export const LOCAL_CALLER: Caller = Object.freeze({ kind: 'local' });

export function userCaller(user: string): Caller {
  return Object.freeze({ kind: 'user', user });
}

/** The name audit records and job owners carry: the user, or undefined for the local (stdio / CLI) caller. */
export function callerUser(caller: Caller): string | undefined {
  return caller.kind === 'user' ? caller.user : undefined;
}
