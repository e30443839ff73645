// mkdir -p without `{ recursive: true }`: Node 20's recursive mkdir spins forever on some
// errors (e.g. a path under /proc returns ENOENT at every level), which would hang mfsd or
// mfsctl on a bad path instead of reporting it.
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

export async function mkdirp(path: string, mode = 0o755): Promise<void> {
  const missing: string[] = [];
  for (let p = resolve(path); ; p = dirname(p)) {
    try {
      await mkdir(p, { mode });
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') break;
      if (code !== 'ENOENT' || dirname(p) === p) throw err;
      missing.push(p);
    }
  }
  // Create the parents found missing, from the top down; the first failure is the real reason.
  for (const p of missing.reverse()) {
    try {
      await mkdir(p, { mode });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}
