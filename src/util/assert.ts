/** An invariant the program itself broke: a bug, never bad input. */
export class AssertionError extends Error {
  override readonly name = 'AssertionError';
}

/** Throws an AssertionError when `condition` is false. Stays on in production. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** Marks a switch as exhaustive: the compiler errors if a case is missing. */
export function assertNever(value: never, message = 'unexpected value'): never {
  throw new AssertionError(`${message}: ${JSON.stringify(value)}`);
}
