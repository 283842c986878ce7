#!/usr/bin/env node
/** The `fleetscore` command line: parses the arguments and runs the command; every failure ends in handleError. */
import { createProgram } from './program';
import { handleError } from './utils/handle-error';

async function run(): Promise<void> {
  await createProgram().parseAsync(process.argv);
}

run().catch(handleError);
