/**
 * Replaces a file's contents all at once: the text goes to a temporary file in
 * the same directory, is fsynced, and is renamed over the old file (rename(2)
 * is atomic within a file system), so a crash leaves the old or the new file,
 * never a torn one. Owner-only (0600, also over a file that was readable by
 * others): the plugins' stores keep secrets and PINs in plain text.
 */
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

let tempCounter = 0;

/** Throws the file system's error (the temporary file removed) when the file could not be replaced. */
export function writeOwnerOnlyAtomically(path: string, text: string): void {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${++tempCounter}.tmp`);
  try {
    const fd = openSync(temp, 'w', 0o600);
    try {
      fchmodSync(fd, 0o600);
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (err) {
    try {
      unlinkSync(temp);
    } catch {
      // The temporary file may not exist (open failed): nothing to clean.
    }
    throw err;
  }
}
