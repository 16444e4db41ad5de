import type { Socket } from 'node:net';
import { DecisionLog } from './decisions.js';
import type { AllowRule, EgressDecision } from './protocol.js';

/** Records one decision, once; later calls are ignored. */
export type Recorder = (decision: Omit<EgressDecision, 'time'>) => void;

/** One registered token: its rules, its open agent connections, and the decisions they made. */
export class TokenState {
  readonly log = new DecisionLog();
  readonly sockets = new Set<Socket>();
  private open = 0;
  private idle: (() => void)[] = [];

  constructor(
    public allow: readonly AllowRule[],
    private readonly now: () => Date,
  ) {}

  /** Operations begun and not yet recorded (requests being relayed, tunnels open). */
  get inflight(): number {
    return this.open;
  }

  track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  /** An operation whose decision is final only when it ends (a tunnel, a streamed response). */
  begin(): Recorder {
    this.open += 1;
    let done = false;
    return (decision) => {
      if (done) return;
      done = true;
      this.log.add({ time: this.now().toISOString(), ...decision });
      this.open -= 1;
      if (this.open === 0) for (const resolve of this.idle.splice(0)) resolve();
    };
  }

  /** Close every connection, wait (at most `timeoutMs`) for the decisions in flight, return them all. */
  async release(timeoutMs: number): Promise<EgressDecision[]> {
    for (const socket of this.sockets) socket.destroy();
    if (this.open > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.idle.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.log.entries(this.now());
  }
}
