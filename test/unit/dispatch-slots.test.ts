import { describe, expect, it } from 'vitest';
import { SlotCancelled, Slots } from '../../src/dispatch/slots.js';

describe('Slots: a caller cancelled while queued', () => {
  it('leaves the queue at once and never runs; the ones behind it still get slots in order', async () => {
    const slots = new Slots(() => 1);
    let release!: () => void;
    const first = slots.with(() => new Promise<void>((r) => (release = r)));
    const controller = new AbortController();
    const ran: string[] = [];
    const cancelled = slots.with(async () => void ran.push('cancelled'), controller.signal);
    const third = slots.with(async () => void ran.push('third'));
    controller.abort();
    await expect(cancelled).rejects.toBeInstanceOf(SlotCancelled);
    release();
    await first;
    await third;
    expect(ran).toEqual(['third']);
    expect(slots.inFlight).toBe(0);
  });

  it('an already-cancelled caller is refused without taking a slot', async () => {
    const slots = new Slots(() => 1);
    const controller = new AbortController();
    controller.abort();
    await expect(slots.with(async () => 1, controller.signal)).rejects.toBeInstanceOf(SlotCancelled);
    expect(slots.inFlight).toBe(0);
  });
});
