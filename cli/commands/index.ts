/** The CLI's commands, in the order `fleetscore --help` lists them. */
import type { Command } from 'commander';
import { demoCommand } from './demo';
import { modelsCommand } from './models';
import { schedulesCommand } from './schedules';
import { backfillCommand } from './backfill';

export const commands: Command[] = [demoCommand, modelsCommand, schedulesCommand, backfillCommand];
