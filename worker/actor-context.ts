import { AsyncLocalStorage } from 'node:async_hooks';
import { defaultPayloadConverter } from '@temporalio/common';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { ACTOR_HEADER, type ActorStamp } from '../domain/actor-header';

const current = new AsyncLocalStorage<ActorStamp | undefined>();

/** The actor of the operation the calling activity serves, if it was started with one. */
export function currentActor(): ActorStamp | undefined {
  return current.getStore();
}

/** Reads the actor header of each activity task (domain/actor-header.ts) for currentActor. */
export const actorActivityInterceptors: ActivityInterceptorsFactory = () => ({
  inbound: {
    async execute(input, next) {
      const header = input.headers[ACTOR_HEADER];
      const stamp = header ? defaultPayloadConverter.fromPayload<ActorStamp>(header) : undefined;
      return current.run(stamp, () => next(input));
    },
  },
});
