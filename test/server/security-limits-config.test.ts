// The limits knobs (issue 8): defaults, a subset overrides, every bad value named in one line.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, DEFAULT_LIMITS, loadConfig } from '../../server/config.js';

const dir = mkdtempSync(join(tmpdir(), 'omfs-limits-cfg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function load(limits: unknown) {
  const p = join(dir, 'c.json');
  writeFileSync(p, JSON.stringify({ node: 1, exports: [{ path: '/srv' }], ...(limits === undefined ? {} : { limits }) }));
  return loadConfig(['--config', p]).config!;
}

describe('limits in the config', () => {
  it('defaults when absent; a subset overrides only what it names', () => {
    expect(load(undefined).limits).toEqual(DEFAULT_LIMITS);
    expect(load({ openFilesPerPeer: 10, tlsHandshakeTimeoutMs: 1000 }).limits)
      .toEqual({ ...DEFAULT_LIMITS, openFilesPerPeer: 10, tlsHandshakeTimeoutMs: 1000 });
  });

  it('a bad value names the field and the range', () => {
    const msg = (limits: unknown): string => {
      try {
        load(limits);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
      return 'accepted';
    };
    expect(msg({ openFilesPerPeer: 0 })).toBe('limits.openFilesPerPeer: must be an integer from 1 to 1048576, got 0');
    expect(msg({ requestsPerPeer: 'many' })).toBe('limits.requestsPerPeer: must be an integer from 1 to 1000000, got "many"');
    expect(msg({ tlsHandshakeTimeoutMs: 1.5 })).toMatch(/^limits\.tlsHandshakeTimeoutMs: must be an integer from 100 /);
    expect(msg({ openFiles: 3 })).toMatch(/^limits: unknown field "openFiles" \(known: openFilesPerPeer, /);
    expect(msg([1])).toMatch(/^limits: must be an object/);
  });
});
