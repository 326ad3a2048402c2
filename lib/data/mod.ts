/**
 * Datasets: the Brown corpus (paragraphs, split, token ids with an on-disk cache) and windowing of
 * id streams into evaluation windows and random training batches.
 *
 * @module
 */

export * from "./brown.ts";
export * from "./windows.ts";
export { cacheKey, defaultCacheDir, idsChecksum, readIdsCache, writeIdsCache } from "./ids_cache.ts";
export type { IdsPair } from "./ids_cache.ts";
