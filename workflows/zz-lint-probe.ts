import { readFile } from 'fs';
import { join } from 'node:path';
import * as os from 'os/promises';
import { createActivities } from '../activities';
import type { createActivities as T } from '../activities';
import { type ActivityDeps } from '../activities/index';
import { a } from './zz-lint-probe-b';
export const x = [readFile, join, os, createActivities, a];
export type Y = T | ActivityDeps;
async function f(): Promise<void> {}
f();
export const z = (v: any) => v == 1;
