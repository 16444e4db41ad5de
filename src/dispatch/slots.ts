/**
 * Bounds how many containers run at once. A slot is held until the sandbox run settles (the container is
 * gone), not until the caller stops waiting: a cancelled MCP call must not free a slot while a container
 * still runs (the original's 0.13.0 lesson). The limit is read on every acquire, so a config change applies
 * to the next dispatch without losing count of the ones in flight.
 *
 * Waiters queue per owner (the HTTP user; '' for the local user) and a freed slot goes to the owners in turn,
 * each in its own arrival order: one user's backlog (a thousand dispatch_async calls) delays another user's
 * dispatch by at most one turn, instead of putting it behind the whole backlog.
 */
export class Slots {
  private running = 0;
  /** Map order is the turn order: an owner served and still waiting moves to the back. */
  private readonly waiting = new Map<string, (() => void)[]>();

  constructor(private readonly limit: () => number) {}

  get inFlight(): number {
    return this.running;
  }

  /** Run `work` in a slot; a caller that cancels while still queued leaves the queue (SlotCancelled). */
  async with<T>(work: () => Promise<T>, signal?: AbortSignal, owner = ''): Promise<T> {
    await this.acquire(signal, owner);
    try {
      return await work();
    } finally {
      this.release();
    }
  }

  private acquire(signal: AbortSignal | undefined, owner: string): Promise<void> {
    if (signal?.aborted) return Promise.reject(new SlotCancelled());
    if (this.running < Math.max(1, this.limit())) {
      this.running += 1;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const grant = (): void => {
        signal?.removeEventListener('abort', leave);
        this.running += 1;
        resolve();
      };
      const leave = (): void => {
        const queue = this.waiting.get(owner) ?? [];
        const at = queue.indexOf(grant);
        if (at !== -1) queue.splice(at, 1);
        if (queue.length === 0) this.waiting.delete(owner);
        reject(new SlotCancelled());
      };
      signal?.addEventListener('abort', leave, { once: true });
      const queue = this.waiting.get(owner);
      if (queue) queue.push(grant);
      else this.waiting.set(owner, [grant]);
    });
  }

  private release(): void {
    this.running -= 1;
    while (this.waiting.size > 0 && this.running < Math.max(1, this.limit())) {
      const [owner, queue] = this.waiting.entries().next().value as [string, (() => void)[]];
      const grant = queue.shift()!;
      this.waiting.delete(owner);
      if (queue.length > 0) this.waiting.set(owner, queue);
      grant();
    }
  }
}

export class SlotCancelled extends Error {
  constructor() {
    super('cancelled while waiting for a container slot');
    this.name = 'SlotCancelled';
  }
}
