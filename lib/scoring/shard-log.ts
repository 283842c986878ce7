import { keys } from '../keys';
import type { ObjectStore } from '../store/object-store';

/** One line of a shard log. */
export interface ShardLogEvent {
  event: string;
  level: 'info' | 'warn' | 'error';
  [field: string]: unknown;
}

/**
 * The durable log of one shard attempt: JSON lines kept in memory and written once, as one object per
 * attempt (`logs/window=W/run=P/shard-N/attempt-A.jsonl`), because object stores cannot append. Every attempt,
 * failed ones included, leaves its own file.
 */
export class ShardLog {
  private readonly lines: string[] = [];

  constructor(
    private readonly store: ObjectStore,
    private readonly window: string,
    private readonly planId: string,
    private readonly shard: number,
    private readonly attempt: number,
  ) {}

  /** Records one event with a timestamp and the run's ids. */
  add(event: ShardLogEvent): void {
    this.lines.push(
      JSON.stringify({
        ts: new Date().toISOString(),
        window: this.window,
        planId: this.planId,
        shard: this.shard,
        attempt: this.attempt,
        ...event,
      }),
    );
  }

  /** Writes the attempt's log to the store. */
  async flush(): Promise<string> {
    const key = keys.shardLog(this.window, this.planId, this.shard, this.attempt);
    await this.store.put(key, `${this.lines.join('\n')}\n`);
    return key;
  }
}
