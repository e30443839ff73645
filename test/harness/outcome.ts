// What a call came to, as one comparable string: 'OK', or the errno name it failed with.
export async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    return (err as { code: string }).code;
  }
}

/** Polls `ok` every `everyMs` until it holds; throws naming `what` after `ms`. */
export async function waitFor(what: string, ok: () => boolean | Promise<boolean>, ms = 30_000, everyMs = 100): Promise<void> {
  const until = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > until) throw new Error(`still not ${what} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** `p`, or a rejection naming `what` if it has not settled within `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms); })])
    .finally(() => clearTimeout(timer));
}
