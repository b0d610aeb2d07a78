import { InvalidStateError } from '../../domain/errors';

/** The sentence a control Update's validator refused with, as the client library reports it. */
export async function refusal(sent: Promise<unknown>): Promise<string> {
  const err = await sent.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(InvalidStateError);
  return (err as InvalidStateError).message;
}
