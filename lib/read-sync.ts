/** Reading a whole open file synchronously, for threads where nothing else waits on the event loop. */
import { readSync } from 'node:fs';

/**
 * The `size` bytes of the open file `fd` (fewer if it ends sooner), read synchronously into memory of their own,
 * not Node's shared pool, so they can be kept or handed on without a copy.
 */
export function readOpenFileSync(fd: number, size: number): Buffer {
  const bytes = Buffer.allocUnsafeSlow(size);
  let read = 0;
  while (read < size) {
    const n = readSync(fd, bytes, read, size - read, read);
    if (n === 0) break;
    read += n;
  }
  return read === size ? bytes : bytes.subarray(0, read);
}
