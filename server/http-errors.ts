import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ValidationError, VirtflowError } from '../domain/errors';

/** A refusal the API answers with its own status: 401, 403, 404 for what the caller may not see. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The status of each operator-facing error; anything else is the server's fault and says nothing. */
const statusOf: Record<string, number> = {
  ValidationError: 400,
  NotFoundError: 404,
  ResourceBusyError: 409,
  InvalidStateError: 409,
  PreCheckError: 409,
  InsufficientCapacityError: 409,
  QuotaExceededError: 409,
};

/**
 * Turns any error into `{ error, message[, field] }`. Operator-facing errors keep their message
 * (it names the field and the reason); an unexpected one is logged with its stack and answered
 * only with the request id, so no internal text reaches a client.
 */
export function sendError(err: FastifyError | Error, req: FastifyRequest, reply: FastifyReply): void {
  if (err instanceof HttpError) {
    if (err.status === 401) void reply.header('www-authenticate', 'Bearer');
    void reply.status(err.status).send({ error: err.code, message: err.message });
    return;
  }
  if (err instanceof VirtflowError && statusOf[err.type]) {
    const field = err instanceof ValidationError ? { field: err.field } : {};
    void reply.status(statusOf[err.type]).send({ error: err.type, message: err.message, ...field });
    return;
  }
  // Fastify's own refusals (body too large, bad JSON, unsupported media type) carry a 4xx status.
  const status = (err as FastifyError).statusCode;
  if (status && status >= 400 && status < 500) {
    void reply
      .status(status)
      .send({ error: (err as FastifyError).code ?? 'BadRequest', message: err.message });
    return;
  }
  req.log.error({ err }, 'request failed');
  void reply.status(500).send({ error: 'InternalError', message: `internal error (request ${req.id})` });
}
