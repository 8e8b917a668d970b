/**
 * CPU and peak memory of the current process, per measured phase. The peak RSS is Linux's VmHWM,
 * reset at the start of a phase through /proc/self/clear_refs; elsewhere it falls back to
 * `process.resourceUsage().maxRSS` (the peak over the process's whole life).
 * @packageDocumentation
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { ProcessUsage } from './types.js';

let canReset: boolean | undefined;

function statusKB(field: string): number | undefined {
  try {
    const m = readFileSync('/proc/self/status', 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Peak RSS since the last reset (or since start), bytes. */
export function peakRssBytes(): number {
  const kb = statusKB('VmHWM');
  return kb !== undefined ? kb * 1024 : process.resourceUsage().maxRSS * 1024;
}

/** Collects garbage (when run with --expose-gc) and resets the peak RSS to the current RSS. */
export function resetPeak(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    gc();
    gc();
  }
  if (canReset === false) return;
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    canReset = true;
  } catch {
    canReset = false;
  }
}

/** Whether peak RSS is per phase (true) or over the process's life (false). */
export function peakIsPerPhase(): boolean {
  return canReset === true;
}

/** CPU time used so far, ms. */
export function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** read- and write-family system calls so far (Linux /proc/self/io), or undefined. */
export function syscalls(): { reads: number; writes: number } | undefined {
  try {
    const t = readFileSync('/proc/self/io', 'utf8');
    const r = t.match(/^syscr: (\d+)/m);
    const w = t.match(/^syscw: (\d+)/m);
    return r && w ? { reads: Number(r[1]), writes: Number(w[1]) } : undefined;
  } catch {
    return undefined;
  }
}

/** A phase meter: `const m = startUsage(); ...; m.stop()`. */
export function startUsage(): { stop(): ProcessUsage } {
  resetPeak();
  const startRssBytes = (statusKB('VmRSS') ?? 0) * 1024 || process.memoryUsage().rss;
  const c0 = cpuMs();
  const s0 = syscalls();
  return {
    stop: () => {
      const u: ProcessUsage = { cpuMs: cpuMs() - c0, peakRssBytes: peakRssBytes(), startRssBytes };
      const s1 = syscalls();
      if (s0 && s1) {
        u.readCalls = s1.reads - s0.reads;
        u.writeCalls = s1.writes - s0.writes;
      }
      return u;
    },
  };
}
