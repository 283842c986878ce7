/** The error of aggregates that cannot be scored, shared by the part reader and the window's device gathering. */

/** Where an aggregates problem is: always the file, and the device, column and row time when known. */
export interface AggregatesErrorContext {
  file: string;
  device?: string | undefined;
  field?: string | undefined;
  ts?: number | undefined;
}

/**
 * Aggregates that cannot be scored. `file` is the part's store key; `device`, `field` and `ts` (epoch ms of the
 * first bad row) are set when the problem is that narrow. Never retryable: the same bytes fail the same way.
 */
export class InvalidAggregates extends Error {
  override readonly name = 'InvalidAggregates';
  public readonly file: string;
  public readonly device: string | undefined;
  public readonly field: string | undefined;
  public readonly ts: number | undefined;
  constructor(message: string, context: AggregatesErrorContext, options?: { cause?: unknown }) {
    const { file, device, field, ts } = context;
    super(`${file}: ${device === undefined ? '' : `device ${device}: `}${message}`, options);
    this.file = file;
    this.device = device;
    this.field = field;
    this.ts = ts;
  }
}
