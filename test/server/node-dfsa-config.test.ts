// mfsd's DFSA settings: "map" and "dfsa" in the config, each problem a ConfigError naming the
// field; a map named explicitly must exist (exit 2, naming it), the default one may be absent.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_DFSA, DEFAULT_MAP_PATH, loadConfig } from '../../server/config.js';
import { DEFAULT_DISSEMINATION } from '../../dfsa/dissemination.js';
import { MFSD_JS, runNode } from '../harness/mfsd.js';

const dir = mkdtempSync(join(tmpdir(), 'omfs-dfsa-config-'));
const exp = join(dir, 'export');
mkdirSync(exp);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function config(extra: Record<string, unknown>): string {
  const p = join(dir, `c${++n}.json`);
  writeFileSync(p, JSON.stringify({ node: 1, listen: '127.0.0.1:0', stateDir: join(dir, `state${n}`), exports: [{ path: exp }], insecure: true, ...extra }));
  return p;
}
function refusal(extra: Record<string, unknown>): string {
  try {
    loadConfig(['--config', config(extra)]);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error(`no ConfigError for ${JSON.stringify(extra)}`);
}

describe('config: map and dfsa', () => {
  it("defaults: dfsa/'s dissemination settings, speed 1000 (a standard CPU), no map unless the default file exists", () => {
    const cfg = loadConfig(['--config', config({})]).config!;
    expect(cfg.dfsa).toEqual({ ...DEFAULT_DISSEMINATION, speed: 1000 });
    expect(DEFAULT_DFSA.intervalMs).toBe(DEFAULT_DISSEMINATION.intervalMs);
    expect(cfg.mapExplicit).toBe(false);
    expect(DEFAULT_MAP_PATH).toBe('/etc/openmosix.map');
  });

  it('takes any subset of the dfsa knobs, a map path from the file or --map', () => {
    const cfg = loadConfig(['--config', config({ map: '/srv/cluster.map', dfsa: { intervalMs: 500, fanout: 2 } })]).config!;
    expect(cfg.dfsa).toEqual({ ...DEFAULT_DFSA, intervalMs: 500, fanout: 2 });
    expect(cfg).toMatchObject({ map: '/srv/cluster.map', mapExplicit: true });
    expect(loadConfig(['--config', config({}), '--map', '/m']).config).toMatchObject({ map: '/m', mapExplicit: true });
  });

  it('refuses bad values naming the field', () => {
    expect(refusal({ dfsa: { fanout: 0 } })).toBe('dfsa.fanout: must be an integer from 1 to 256, got 0');
    expect(refusal({ dfsa: { intervalMs: 10 } })).toBe('dfsa.intervalMs: must be an integer from 50 to 3600000, got 10');
    expect(refusal({ dfsa: { interval: 5 } })).toMatch(/^dfsa: unknown field "interval" \(known: intervalMs, fanout, window, forward, speed\)$/);
    expect(refusal({ map: 'relative.map' })).toBe('map: must be an absolute path, got "relative.map"');
  });

  it('a map named but missing: mfsd exits 2 naming it', async () => {
    const missing = join(dir, 'no-such.map');
    const r = await runNode(MFSD_JS, ['--config', config({ map: missing })]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`mfsd: map ${missing}: cannot read (ENOENT)`);
  });
});
