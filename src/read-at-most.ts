import { readSync } from 'node:fs';

/** Up to `size` bytes of an open file from its start; fewer when it shrank since the caller's fstat. */
export function readAtMost(fd: number, size: number): Buffer {
  const buffer = Buffer.alloc(size);
  let filled = 0;
  while (filled < size) {
    const n = readSync(fd, buffer, filled, size - filled, filled);
    if (n === 0) break;
    filled += n;
  }
  return buffer.subarray(0, filled);
}
