/**
 * The classification of every error class in lib/shared/errors.ts, derived from the classes themselves: the
 * workflow's retry policies list {@link NON_RETRYABLE_ERROR_TYPES}, activities and the workflow turn an error into
 * an ApplicationFailure with {@link toApplicationFailure}. No Node imports: the workflow imports this module.
 */
import { ApplicationFailure } from '@temporalio/common';
import * as errors from './errors';
import { FleetscoreError, type ErrorScope } from './errors';

/** A concrete fleetscore error class. */
export type ErrorClass = abstract new (...args: never[]) => FleetscoreError;

const BASES = new Set<unknown>([
  errors.FleetscoreError,
  errors.DeviceError,
  errors.PermanentError,
  errors.TransientError,
]);

/** Every concrete error class in lib/shared/errors.ts. */
export const ERROR_CLASSES: readonly ErrorClass[] = (Object.values(errors) as unknown[]).filter(
  (value): value is ErrorClass =>
    typeof value === 'function' && value.prototype instanceof FleetscoreError && !BASES.has(value),
);

/** What an error class fails and whether a retry can help, read from its base class. */
export function classify(cls: ErrorClass): { scope: ErrorScope; retryable: boolean } {
  const proto = cls.prototype as FleetscoreError;
  return { scope: proto.scope, retryable: proto.retryable };
}

/** The `failure.type`s a retry cannot fix: the names of every error class that is not retryable. */
export const NON_RETRYABLE_ERROR_TYPES: readonly string[] = ERROR_CLASSES.filter((c) => !classify(c).retryable).map(
  (c) => c.name,
);

/**
 * The ApplicationFailure that carries `err` across the workflow boundary: its type is the class name, and it is
 * non-retryable when the error is, so Temporal stops at once instead of retrying until the attempts run out.
 */
export function toApplicationFailure(err: FleetscoreError): ApplicationFailure {
  return ApplicationFailure.create({ message: err.message, type: err.name, nonRetryable: !err.retryable, cause: err });
}
