// Decay of per-process I/O statistics, with openMosix's semantics: every `interval` seconds a
// counter keeps slow/1000 (default 975) of its value, or fast/1000 (926) for a process marked
// for fast decay (mosrun's fastdecay); "no decay" keeps everything. The ticks are global, as a
// kernel timer's were: a count recorded just before a tick is decayed at that tick.
//
// Choices where the reference is silent (omfs-reference.md section 6):
// - the default interval is 1 second (not recorded for openMosix): with 975 the half-life is
//   about 27 s, with 926 about 9 s, which follows a process changing phase within a minute;
// - setdecay requires fast <= slow: "fast" decay that kept more than "slow" would be the names
//   swapped, surely a mistake; both are per mille, 0..1000 (1000 keeps everything);
// - the interval is whole seconds, 1..86400.
import { TableError, parseWords, type FieldSpec, type TableSpec } from './tables.js';

export interface DecaySettings {
  /** Seconds between decay ticks. */
  interval: number;
  /** Per mille kept each tick under slow decay. */
  slow: number;
  /** Per mille kept each tick under fast decay. */
  fast: number;
}

const perMille = (name: string, what: string): FieldSpec => ({ name, what, min: 0, max: 1000, maxWhy: 'per mille kept each interval; 1000 keeps everything' });

export const DECAY: TableSpec = {
  file: 'decay',
  fields: [
    { name: 'INTERVAL', what: 'seconds between decays', min: 1, max: 86_400, maxWhy: 'one day' },
    perMille('SLOW', 'per mille kept by slow decay'),
    perMille('FAST', 'per mille kept by fast decay'),
  ],
  defaults: [1, 975, 926],
};

export const DEFAULT_DECAY: DecaySettings = { interval: 1, slow: 975, fast: 926 };

/** Settings from values (in DECAY's order), checking what one field cannot: fast <= slow. */
export function decayOf(values: readonly number[]): DecaySettings {
  const [interval, slow, fast] = values as [number, number, number];
  if (fast > slow) throw new TableError(`decay field 3 (FAST, per mille kept by fast decay): ${fast} keeps more than SLOW (${slow}); fast decay must keep at most what slow decay keeps`);
  return { interval, slow, fast };
}

/** `setdecay INTERVAL SLOW FAST` words to settings, or a TableError naming the field. */
export const parseDecay = (words: readonly string[]): DecaySettings => decayOf(parseWords(DECAY, words));
export const decayValues = (d: DecaySettings): number[] => [d.interval, d.slow, d.fast];

export type DecayMode = 'slow' | 'fast' | 'none';

/** What a counter keeps after `ticks` whole intervals: value·(rate/1000)^ticks. */
export function decayed(value: number, settings: DecaySettings, mode: DecayMode, ticks: number): number {
  if (ticks <= 0 || mode === 'none') return value;
  const rate = (mode === 'fast' ? settings.fast : settings.slow) / 1000;
  return value * rate ** ticks;
}

/** Index of the global tick at time `ms` (ticks at every whole multiple of the interval). */
export const tickAt = (ms: number, settings: DecaySettings): number => Math.floor(ms / (settings.interval * 1000));
