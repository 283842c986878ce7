/**
 * Registers fleetscore's custom search attributes on a namespace that lacks them (a self-hosted cluster or a
 * dev server started without the flags). Temporal Cloud namespaces need them added once in the Cloud UI or
 * with tcld, since Cloud rejects this operator call.
 */
import type { Connection } from '@temporalio/client';
import { SearchAttributeType } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { SEARCH_ATTRIBUTES } from '../shared/names';

const INDEXED: Partial<Record<SearchAttributeType, temporal.api.enums.v1.IndexedValueType>> = {
  [SearchAttributeType.KEYWORD]: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  [SearchAttributeType.INT]: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_INT,
};

/** Adds the search attributes that are missing and returns their names (empty when all exist). */
export async function ensureSearchAttributes(connection: Connection, namespace: string): Promise<string[]> {
  const existing = await connection.operatorService.listSearchAttributes({ namespace });
  const known = new Set([
    ...Object.keys(existing.customAttributes ?? {}),
    ...Object.keys(existing.systemAttributes ?? {}),
  ]);
  const missing = Object.values(SEARCH_ATTRIBUTES).filter((key) => !known.has(key.name));
  if (missing.length === 0) return [];
  await addSearchAttributes(connection, namespace, missing);
  return missing.map((key) => key.name);
}

/**
 * Adds search attributes without listing first: for a server that cannot list them (Temporal's time-skipping
 * test server) and knows none of them yet.
 */
export async function addSearchAttributes(
  connection: Connection,
  namespace: string,
  attributes: readonly (typeof SEARCH_ATTRIBUTES)[keyof typeof SEARCH_ATTRIBUTES][] = Object.values(SEARCH_ATTRIBUTES),
): Promise<void> {
  await connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(attributes.map((key) => [key.name, INDEXED[key.type]!])),
  });
}
