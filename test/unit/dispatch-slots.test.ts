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

describe('Slots: owners take turns', () => {
  it("one owner's backlog does not hold another's work behind all of it: freed slots go to the owners in turn", async () => {
    const slots = new Slots(() => 1);
    const ran: string[] = [];
    let release!: () => void;
    const first = slots.with(() => new Promise<void>((r) => (release = r)), undefined, 'alice');
    const queued = [
      ...['a1', 'a2', 'a3'].map((name) => slots.with(async () => void ran.push(name), undefined, 'alice')),
      slots.with(async () => void ran.push('b1'), undefined, 'bob'),
      slots.with(async () => void ran.push('l1')),
      slots.with(async () => void ran.push('b2'), undefined, 'bob'),
    ];
    await new Promise((r) => setImmediate(r));
    release();
    await first;
    await Promise.all(queued);
    expect(ran).toEqual(['a1', 'b1', 'l1', 'a2', 'b2', 'a3']);
    expect(slots.inFlight).toBe(0);
  });

  it("a cancelled waiter leaves its owner's turn; the others keep theirs", async () => {
    const slots = new Slots(() => 1);
    const ran: string[] = [];
    let release!: () => void;
    const first = slots.with(() => new Promise<void>((r) => (release = r)), undefined, 'alice');
    const controller = new AbortController();
    const cancelled = slots.with(async () => void ran.push('b1'), controller.signal, 'bob');
    const rest = [slots.with(async () => void ran.push('a1'), undefined, 'alice'), slots.with(async () => void ran.push('c1'), undefined, 'carol')];
    controller.abort();
    await expect(cancelled).rejects.toBeInstanceOf(SlotCancelled);
    await new Promise((r) => setImmediate(r));
    release();
    await first;
    await Promise.all(rest);
    expect(ran).toEqual(['a1', 'c1']);
  });
});
