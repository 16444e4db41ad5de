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

  async with<T>(work: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await work();
    } finally {
      this.release();
    }
  }

  private acquire(): Promise<void> {
    if (this.running < Math.max(1, this.limit())) {
      this.running += 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(() => {
      this.running += 1;
      resolve();
    }));
  }

  private release(): void {
    this.running -= 1;
    while (this.waiting.length > 0 && this.running < Math.max(1, this.limit())) this.waiting.shift()!();
  }
}
