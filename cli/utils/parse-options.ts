/**
 * Options and arguments parsed with a zod schema, with every problem reported against the option or argument as
 * the user typed it (`--shard-size`, `WINDOW`), its value, and the command's `--help`: never a raw zod message.
 */
import type { Command } from 'commander';
import type { z } from 'zod';
import { InvalidArguments } from '../../lib/shared/errors';

/** `fleetscore runs show`, for the usage hint. */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * Parses `values` (commander's options, plus positional arguments under their names) with `schema`. `labels` names
 * keys whose label is not the option's flag (a WINDOW that may come as an argument or as `--window`).
 */
export function parseOptions<S extends z.ZodType>(
  command: Command,
  schema: S,
  values: Record<string, unknown>,
  labels: Record<string, string> = {},
): z.output<S> {
  const result = schema.safeParse(values);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => {
    const key = issue.path.length > 0 ? String(issue.path[0]) : '';
    return { argument: labels[key] ?? labelOf(command, key), message: describeIssue(issue, values[key]) };
  });
  throw new InvalidArguments(commandPath(command), issues);
}

/** The flag of the option (`--shard-size`) or the name of the argument (`WINDOW`) behind a schema key. */
function labelOf(command: Command, key: string): string {
  const option = command.options.find((o) => o.attributeName() === key);
  if (option) return option.long ?? option.short ?? key;
  const argument = command.registeredArguments.find((a) => camel(a.name()) === key);
  if (argument) return argument.name().toUpperCase();
  return key ? `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` : 'arguments';
}

const camel = (name: string) => name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/**
 * What is wrong, in words. Zod's own checks end with the value the user gave; custom checks say it themselves where
 * it helps (a check across options has no one value).
 */
function describeIssue(issue: z.core.$ZodIssue, raw: unknown): string {
  let message: string;
  switch (issue.code) {
    case 'invalid_value':
      message = `must be one of ${issue.values.map(String).join(', ')}`;
      break;
    case 'invalid_type':
      if (raw === undefined) return 'is required';
      message = `must be ${issue.expected === 'int' ? 'a whole number' : `a ${issue.expected}`}`;
      break;
    case 'too_small':
      message = `must be ${issue.inclusive === false ? 'greater than' : 'at least'} ${String(issue.minimum)}`;
      break;
    case 'too_big':
      message = `must be ${issue.inclusive === false ? 'less than' : 'at most'} ${String(issue.maximum)}`;
      break;
    default:
      return issue.message;
  }
  return raw === undefined || typeof raw === 'boolean' ? message : `${message}, got ${JSON.stringify(raw)}`;
}
