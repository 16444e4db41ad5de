/**
 * Bounds how many containers run at once. A slot is held until the sandbox run settles (the container is
 * gone), not until the caller stops waiting: a cancelled MCP call must not free a slot while a container
 * still runs (the original's 0.13.0 lesson). The limit is read on every acquire, so a config change applies
 * to the next dispatch without losing count of the ones in flight.
 */
export class Slots {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: () => number) {}

  get inFlight(): number {
    return this.running;
  }

  /** Run `work` in a slot; a caller that cancels while still queued leaves the queue (SlotCancelled). */
  async with<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.acquire(signal);
    try {
      return await work();
    } finally {
      this.release();
    }
  }

  private acquire(signal: AbortSignal | undefined): Promise<void> {
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
        const at = this.waiting.indexOf(grant);
        if (at !== -1) this.waiting.splice(at, 1);
        reject(new SlotCancelled());
      };
      signal?.addEventListener('abort', leave, { once: true });
      this.waiting.push(grant);
    });
  }

  private release(): void {
    this.running -= 1;
    while (this.waiting.length > 0 && this.running < Math.max(1, this.limit())) this.waiting.shift()!();
  }
}

export class SlotCancelled extends Error {
  constructor() {
    super('cancelled while waiting for a container slot');
    this.name = 'SlotCancelled';
  }
}
