/**
 * Who started an operation travels with it as a Temporal header: the client sets it on the start,
 * the workflow passes it on to its activities, children and continue-as-new runs
 * (workflows/actor-propagation.ts), and the controller's activities read it
 * (worker/actor-context.ts), so every audit event an operation leaves names its actor. A header,
 * not a workflow argument: it changes no workflow input and no command, so runs recorded before
 * it replay unchanged.
 */
export const ACTOR_HEADER = 'virtflow-actor';

/** What the header carries: the actor's name and token, never its grants. */
export interface ActorStamp {
  actor: string;
  tokenId?: string;
}
