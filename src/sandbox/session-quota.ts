import type Docker from 'dockerode';
import { describeError } from '../errors.js';
import { logger } from '../log.js';

const log = logger('sandbox');
/** How often the engine is asked how much each watched session volume holds while dispatches run. */
export const QUOTA_POLL_MS = 500;
/** A measurement that must happen (the check after a dispatch) waits out another df this long at most. */
const BUSY_RETRY_MS = 15_000;
const BUSY_BACKOFF_MS = 200;

/** Docker 20.10 refuses a df while another is running (any client's) instead of waiting for it. */
export function dfBusy(error: unknown): boolean {
  return /disk usage operation is already running/i.test(describeError(error));
}

interface Watch {
  volume: string;
  capBytes: number;
  onExceeded: (bytes: number) => void;
}

/**
 * The session volume's quota while dispatches run. Docker's `local` volumes have no size limit of their own,
 * so the engine is asked (GET /system/df: it measures as root, so nothing the agent hides with chmod escapes
 * it) every QUOTA_POLL_MS how much each watched volume holds; past its cap the watch fires once, and the
 * runner kills that dispatch and prunes the volume back under the cap. One poll serves every running dispatch.
 * A dispatch may overshoot by what it writes between two polls (each file is also capped by ulimit -f).
 */
export class SessionQuota {
  private readonly watches = new Set<Watch>();
  private timer: NodeJS.Timeout | undefined;
  private polling = false;

  constructor(
    private readonly docker: Docker,
    private readonly pollMs: number = QUOTA_POLL_MS,
  ) {}

  /** Watch `volume` until the returned stop is called. */
  watch(volume: string, capBytes: number, onExceeded: (bytes: number) => void): () => void {
    const entry: Watch = { volume, capBytes, onExceeded };
    this.watches.add(entry);
    this.timer ??= setInterval(() => void this.poll(), this.pollMs);
    this.timer.unref();
    return () => {
      this.watches.delete(entry);
      if (this.watches.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }

  /**
   * How many bytes `volume` holds, as the engine measures it; undefined when it cannot say. Unlike a poll (the
   * next one comes 500 ms later), this one is the last look after a dispatch: another df running on the engine
   * (another dispatch's poll, another server, `docker system df`) is waited out, not taken as an answer.
   */
  async usage(volume: string): Promise<number | undefined> {
    const until = Date.now() + BUSY_RETRY_MS;
    for (;;) {
      try {
        return (await this.sizes()).get(volume);
      } catch (error) {
        if (!dfBusy(error) || Date.now() >= until) throw error;
        await new Promise((resolve) => setTimeout(resolve, BUSY_BACKOFF_MS));
      }
    }
  }

  private async poll(): Promise<void> {
    if (this.polling || this.watches.size === 0) return;
    this.polling = true;
    try {
      const sizes = await this.sizes();
      for (const watch of [...this.watches]) {
        const bytes = sizes.get(watch.volume);
        if (bytes !== undefined && bytes > watch.capBytes) {
          this.watches.delete(watch);
          watch.onExceeded(bytes);
        }
      }
    } catch (error) {
      log.debug(`session quota poll failed: ${describeError(error)}`);
    } finally {
      this.polling = false;
    }
  }

  private async sizes(): Promise<Map<string, number>> {
    const df = (await this.docker.df()) as { Volumes?: { Name: string; UsageData?: { Size?: number } }[] | null };
    const sizes = new Map<string, number>();
    for (const v of df.Volumes ?? []) if (typeof v.UsageData?.Size === 'number' && v.UsageData.Size >= 0) sizes.set(v.Name, v.UsageData.Size);
    return sizes;
  }
}
