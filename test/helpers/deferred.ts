/** A promise a test resolves by hand: a mocked step waits on it, so the test decides when the step ends. */
export function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
