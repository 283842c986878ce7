/** The CLI's commands, in the order `fleetscore --help` lists them. */
import type { Command } from 'commander';
import { autoscaleCommand } from './autoscale';
import { demoCommand } from './demo';
import { modelsCommand } from './models';
import { schedulesCommand } from './schedules';
import { backfillCommand } from './backfill';
import { predictionsCommand } from './predictions';
import { runsCommand } from './runs';
import { upCommand } from './start';
import { workerCommand } from './worker';

export const commands: Command[] = [
  upCommand,
  workerCommand,
  autoscaleCommand,
  schedulesCommand,
  backfillCommand,
  runsCommand,
  predictionsCommand,
  modelsCommand,
  demoCommand,
];
