/**
 * A file of a local store whose next read waits until the test lets it go: the file becomes a named pipe (FIFO),
 * so the worker that reads it blocks (opening it, then reading it), at the device the test chose, however fast the
 * machine is. The test waits for the reader, acts (cancels the run, signals the worker), then gives the reader the
 * file's own bytes and puts the file back as it was. The local-store counterpart of the S3 rigs' store gate.
 */
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  constants,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { errnoCode } from '../../../lib/shared/errors';

export class HeldRead {
  private readonly bytes: Buffer;
  private writer: number | undefined;
  private released = false;

  /** Holds every read of `path` (a regular file) from now on, until {@link HeldRead.release}. */
  constructor(readonly path: string) {
    this.bytes = readFileSync(path);
    rmSync(path);
    execFileSync('mkfifo', [path]);
  }

  /** Resolves once a reader has opened the file and waits for its bytes. */
  async reader(timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((this.writer = this.openWriter()) === undefined) {
      if (Date.now() > deadline) throw new Error(`nothing read ${this.path} in ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  /** Whether process `pid` has the file open (Linux: its descriptors in /proc), i.e. is the reader waiting in it. */
  openBy(pid: number): boolean {
    const fds = `/proc/${pid}/fd`;
    return readdirSync(fds).some((fd) => {
      try {
        return readlinkSync(`${fds}/${fd}`) === this.path;
      } catch (err) {
        // A descriptor closed since the listing.
        if (errnoCode(err) === 'ENOENT') return false;
        throw err;
      }
    });
  }

  /**
   * Gives a waiting reader (if any) the file's bytes and restores the file. Idempotent, so a test calls it in
   * `finally` too: a FIFO left behind would hang the next case's runs.
   */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    const fd = this.writer ?? this.openWriter();
    if (fd !== undefined) {
      try {
        for (let at = 0; at < this.bytes.length;) {
          try {
            at += writeSync(fd, this.bytes, at);
          } catch (err) {
            // The reader is gone (a test killed it): nobody to give the bytes to.
            if (errnoCode(err) === 'EPIPE') break;
            // A pipe holds 64 KiB: wait for the reader to take some.
            if (errnoCode(err) !== 'EAGAIN') throw err;
            await sleep(5);
          }
        }
      } finally {
        closeSync(fd);
      }
    }
    rmSync(this.path);
    writeFileSync(this.path, this.bytes);
  }

  /** The FIFO's write end, or `undefined` while nothing has it open for reading. */
  private openWriter(): number | undefined {
    try {
      return openSync(this.path, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (err) {
      if (errnoCode(err) === 'ENXIO') return undefined;
      throw err;
    }
  }
}
