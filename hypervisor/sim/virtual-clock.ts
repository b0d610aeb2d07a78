/**
 * The simulated fleet's clock. Simulated work (a migration's transfer, a patch, a reboot) waits
 * on this clock instead of wall time, so a rollout that would take hours runs in minutes and
 * its makespan is measured in modelled seconds, free of the orchestration's own latency.
 *
 * Time moves only when nothing is busy: every activity holds the clock while it executes and
 * lets go while it waits on the clock. Once nothing has held it for `settleMs` of real time
 * (the gap a workflow task needs between two activities), the clock jumps to the earliest
 * pending wake-up. This is the conservative rule of discrete-event simulation: a step still in
 * flight when the clock jumps can only make the measured makespan longer, never shorter.
 */
export class VirtualClock {
  private nowSec = 0;
  /** How many times the clock has moved: each move costs `settleMs` of real time at least. */
  steps = 0;
  private busy = 0;
  private quietSince = Date.now();
  private readonly sleepers: { at: number; wake: () => void }[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly settleMs = 300) {
    this.timer = setInterval(() => this.advanceIfQuiet(), Math.max(5, Math.floor(settleMs / 4)));
    this.timer.unref();
  }

  /** Modelled seconds since the clock started. */
  now(): number {
    return this.nowSec;
  }

  /** Wraps activities so each holds the clock while it runs (and not while it sleeps on it). */
  holding<T extends object>(activities: T): T {
    return Object.fromEntries(
      Object.entries(activities).map(([name, fn]) => [
        name,
        async (...args: unknown[]) => {
          this.adjust(+1);
          try {
            return await (fn as (...a: unknown[]) => Promise<unknown>)(...args);
          } finally {
            this.adjust(-1);
          }
        },
      ]),
    ) as T;
  }

  /**
   * Waits `seconds` of modelled time, or rejects when `signal` aborts. Called from a held
   * activity: the hold is given up while it sleeps.
   */
  async sleep(seconds: number, signal?: AbortSignal): Promise<void> {
    if (seconds <= 0) return;
    await this.sleepUntil(this.nowSec + seconds, Infinity, signal);
    signal?.throwIfAborted();
  }

  /**
   * Waits until modelled time reaches `at`, at most `realMs` of wall time; true when it did.
   * Called from a held activity, like `sleep`.
   */
  async sleepUntil(at: number, realMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.nowSec >= at || signal?.aborted) return this.nowSec >= at;
    let done!: (reached: boolean) => void;
    const result = new Promise<boolean>((r) => (done = r));
    const sleeper = { at, wake: () => done(true) };
    const giveUp = () => {
      const i = this.sleepers.indexOf(sleeper);
      if (i >= 0) this.sleepers.splice(i, 1);
      done(false);
    };
    const timer = Number.isFinite(realMs) ? setTimeout(giveUp, realMs) : undefined;
    signal?.addEventListener('abort', giveUp, { once: true });
    this.sleepers.push(sleeper);
    this.adjust(-1);
    try {
      return await result;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', giveUp);
      this.adjust(+1);
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private adjust(delta: number): void {
    this.busy += delta;
    this.quietSince = Date.now();
  }

  private advanceIfQuiet(): void {
    if (this.sleepers.length === 0 || this.busy > 0 || Date.now() - this.quietSince < this.settleMs) return;
    const next = Math.min(...this.sleepers.map((s) => s.at));
    this.nowSec = next;
    this.steps++;
    for (const s of this.sleepers.filter((x) => x.at <= next)) {
      this.sleepers.splice(this.sleepers.indexOf(s), 1);
      s.wake();
    }
    // The woken chains need real time to take their next step: hold still for them.
    this.quietSince = Date.now();
  }
}
