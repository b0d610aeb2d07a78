import { Context } from '@temporalio/activity';

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
 *
 * A busy orchestrator can take longer than `settleMs` between two steps of one chain, and each
 * such jump makes a host look out of service for longer than it would be. So the clock also
 * follows chains: when an activity ends, its workflow holds the clock until its next activity
 * starts, a child it starts takes the hold over, and a run that ends hands it to its parent. A
 * chain that goes on to wait for something else lets go after `handOverMs`.
 */
export class VirtualClock {
  private nowSec = 0;
  /** How many times the clock has moved: each move costs `settleMs` of real time at least. */
  steps = 0;
  private busy = 0;
  private quietSince = Date.now();
  private readonly sleepers: { at: number; wake: () => void }[] = [];
  private readonly timer: NodeJS.Timeout;
  /** Per workflow id: until when each hold handed to it lasts (real time). */
  private readonly handOvers = new Map<string, number[]>();

  constructor(
    private readonly settleMs = 300,
    private readonly handOverMs = 2000,
  ) {
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
          const workflowId = callerWorkflowId();
          this.adjust(+1);
          if (workflowId) this.take(workflowId);
          try {
            return await (fn as (...a: unknown[]) => Promise<unknown>)(...args);
          } finally {
            if (workflowId) this.handTo(workflowId);
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

  /** A run started: the hold its parent's step handed over is now the run's own. */
  runStarted(workflowId: string, parentId?: string): void {
    if (parentId && this.take(parentId)) this.handTo(workflowId);
  }

  /** A run ended: its parent, woken by that, holds the clock until it takes its next step. */
  runEnded(workflowId: string, parentId?: string): void {
    this.handOvers.delete(workflowId);
    if (parentId) this.handTo(parentId);
    this.quietSince = Date.now();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private adjust(delta: number): void {
    this.busy += delta;
    this.quietSince = Date.now();
  }

  private handTo(workflowId: string): void {
    const holds = this.handOvers.get(workflowId) ?? [];
    holds.push(Date.now() + this.handOverMs);
    this.handOvers.set(workflowId, holds);
  }

  /** Takes one hold handed to a workflow, if it has one. */
  private take(workflowId: string): boolean {
    const holds = this.handOvers.get(workflowId);
    if (!holds?.length) return false;
    holds.shift();
    if (holds.length === 0) this.handOvers.delete(workflowId);
    return true;
  }

  /** Whether a chain is between two steps; holds past their time are let go. */
  private handingOver(): boolean {
    const now = Date.now();
    for (const [id, holds] of this.handOvers) {
      const live = holds.filter((until) => until > now);
      if (live.length) this.handOvers.set(id, live);
      else this.handOvers.delete(id);
    }
    return this.handOvers.size > 0;
  }

  private advanceIfQuiet(): void {
    if (this.sleepers.length === 0 || this.busy > 0 || Date.now() - this.quietSince < this.settleMs) return;
    if (this.handingOver()) return;
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

/** The workflow an activity runs for, when called as an activity. */
function callerWorkflowId(): string | undefined {
  try {
    return Context.current().info.workflowExecution?.workflowId;
  } catch {
    return undefined;
  }
}
