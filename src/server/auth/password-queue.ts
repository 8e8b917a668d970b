/**
 * Runs password checks (scrypt: 32 MiB and tens of milliseconds each, on libuv's thread pool) at
 * most `concurrency` at a time, queued per client address and served round robin, so one address
 * cannot monopolise the thread pool: a check from another address waits for at most one check of
 * each other waiting address. Each address's queue and the whole queue are bounded; beyond them
 * {@link QueueFull} is thrown at once.
 *
 * Hand-written rather than taken from a concurrency-limiting package (p-limit and the like serve
 * one FIFO queue): fairness between keys is the point here.
 * @packageDocumentation
 */
import { availableParallelism } from 'node:os';

/** Options of {@link FairQueue}. */
export interface FairQueueOptions {
  /** Checks run at once. Default {@link defaultCheckConcurrency}. */
  concurrency?: number;
  /** Checks one key may have waiting. Default 8. */
  maxQueuedPerKey?: number;
  /** Checks waiting in all. Default 1024. */
  maxQueued?: number;
}

/**
 * The default number of concurrent password checks: at most 4, no more than the CPUs (scrypt is
 * CPU-bound: more would only interleave), and one thread of libuv's pool (`UV_THREADPOOL_SIZE`,
 * default 4) left for file, DNS and compression work.
 */
export const defaultCheckConcurrency = Math.max(1, Math.min(4, availableParallelism(), (Number(process.env.UV_THREADPOOL_SIZE) || 4) - 1));

/** Thrown by {@link FairQueue.run} when a queue is full. */
export class QueueFull extends Error {
  /** `key`: this key's queue is full; `all`: the whole queue is. */
  readonly scope: 'key' | 'all';
  constructor(scope: 'key' | 'all') {
    super(scope === 'key' ? 'too many checks waiting for this key' : 'too many checks waiting');
    this.name = 'QueueFull';
    this.scope = scope;
  }
}

interface Job {
  start(): void;
  abandon(reason: unknown): void;
}

/** See the file comment. */
export class FairQueue {
  private active = 0;
  private waiting = 0;
  private peak = 0;
  /** Waiting jobs per key; the map's order is the round-robin order (a served key moves to the back). */
  private readonly queues = new Map<string, Job[]>();
  private readonly o: Required<FairQueueOptions>;

  constructor(options: FairQueueOptions = {}) {
    this.o = { concurrency: defaultCheckConcurrency, maxQueuedPerKey: 8, maxQueued: 1024, ...options };
  }

  /**
   * Runs `task` when its turn comes. `signal` abandons it while it waits (rejecting with the
   * signal's reason); once started it runs to the end.
   */
  run<T>(key: string, task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.active < this.o.concurrency && this.waiting === 0) return this.execute(task);
    const q = this.queues.get(key) ?? [];
    if (q.length >= this.o.maxQueuedPerKey) return Promise.reject(new QueueFull('key'));
    if (this.waiting >= this.o.maxQueued) return Promise.reject(new QueueFull('all'));
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => job.abandon(signal?.reason);
      const job: Job = {
        start: () => {
          signal?.removeEventListener('abort', onAbort);
          this.execute(task).then(resolve, reject);
        },
        abandon: (reason) => {
          const mine = this.queues.get(key);
          const i = mine?.indexOf(job) ?? -1;
          if (!mine || i < 0) return;
          mine.splice(i, 1);
          if (mine.length === 0) this.queues.delete(key);
          this.waiting--;
          reject(reason);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      q.push(job);
      if (q.length === 1) this.queues.set(key, q);
      this.waiting++;
    });
  }

  /** Checks running, waiting, and the most ever run at once. */
  stats(): { active: number; waiting: number; peakActive: number } {
    return { active: this.active, waiting: this.waiting, peakActive: this.peak };
  }

  private async execute<T>(task: () => Promise<T>): Promise<T> {
    this.active++;
    this.peak = Math.max(this.peak, this.active);
    try {
      return await task();
    } finally {
      this.active--;
      this.next();
    }
  }

  /** Starts waiting jobs while there is room, one key at a time in round-robin order. */
  private next(): void {
    while (this.active < this.o.concurrency) {
      const first = this.queues.entries().next();
      if (first.done) return;
      const [key, q] = first.value;
      const job = q.shift()!;
      this.queues.delete(key);
      if (q.length > 0) this.queues.set(key, q);
      this.waiting--;
      job.start();
    }
  }
}
