/** How much of something (bodies arriving, calls in flight) each user holds at once, under one cap per user. */
export class UserQuota {
  private readonly held = new Map<string, number>();

  constructor(readonly max: number) {}

  /** Take `n` for `user`; false (nothing taken) when that would pass the cap. */
  take(user: string, n = 1): boolean {
    const current = this.held.get(user) ?? 0;
    if (current + n > this.max) return false;
    this.held.set(user, current + n);
    return true;
  }

  give(user: string, n = 1): void {
    const left = (this.held.get(user) ?? n) - n;
    if (left > 0) this.held.set(user, left);
    else this.held.delete(user);
  }
}
