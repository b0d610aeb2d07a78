import { Context } from '@temporalio/activity';
import { currentActor } from '../../worker/actor-context';

/** The workflow run an activity serves, and who started it: audit events and reservations carry it. */
export function currentRun() {
  const run = Context.current().info.workflowExecution;
  return { workflowId: run?.workflowId ?? 'unknown', runId: run?.runId ?? 'unknown', ...currentActor() };
}

/** Reservations belong to a workflow run, so a retried activity finds its own claim. */
export function reservationOwner(): string {
  const { workflowId, runId } = currentRun();
  return `${workflowId}@${runId}`;
}
