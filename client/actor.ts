import os from 'node:os';
import { Client } from '@temporalio/client';
import type { WorkflowClientInterceptor, WorkflowStartInput } from '@temporalio/client';
import { defaultPayloadConverter, TypedSearchAttributes, type SearchAttributePair } from '@temporalio/common';
import { FLEET, type Actor } from '../domain/access';
import { ACTOR_HEADER, type ActorStamp } from '../domain/actor-header';
import { searchAttributes } from '../domain/names';

const typed = (sa: TypedSearchAttributes | SearchAttributePair[] | undefined) =>
  sa instanceof TypedSearchAttributes ? sa : new TypedSearchAttributes(sa);

/**
 * Stamps every workflow a client starts with its actor: in the memo and the `VfActor` search
 * attribute (the Temporal UI filters runs by who started them) and in the header its activities
 * read for the audit events (domain/actor-header.ts).
 */
function actorInterceptor(actor: Actor, memo: Record<string, string>): WorkflowClientInterceptor {
  const stamp: ActorStamp = { actor: actor.name, ...(actor.tokenId ? { tokenId: actor.tokenId } : {}) };
  const stamped = <T extends Pick<WorkflowStartInput, 'headers' | 'options'>>(input: T): T => ({
    ...input,
    headers: { ...input.headers, [ACTOR_HEADER]: defaultPayloadConverter.toPayload(stamp) },
    options: {
      ...input.options,
      memo: { ...input.options.memo, ...memo, ...stamp },
      typedSearchAttributes: typed(input.options.typedSearchAttributes).updateCopy([
        { key: searchAttributes.actor, value: actor.name },
      ]),
    },
  });
  return {
    startWithDetails: (input, next) => next(stamped(input)),
    signalWithStart: (input, next) => next(stamped(input)),
  };
}

/**
 * A client on `client`'s connection that stamps what it starts with `actor`, and `memo` (the API
 * records the project an operation acts in, so its run stays readable to the project after its
 * VM is gone).
 */
export function clientActingAs(client: Client, actor: Actor, memo: Record<string, string> = {}): Client {
  return new Client({
    connection: client.connection,
    namespace: client.options.namespace,
    interceptors: { workflow: [actorInterceptor(actor, memo)] },
  });
}

/** The CLI's direct mode: the machine's user, with the whole fleet (it holds the database's keys). */
export function localActor(): Actor {
  return { name: `local:${os.userInfo().username}`, grants: [{ project: FLEET, role: 'admin' }] };
}
