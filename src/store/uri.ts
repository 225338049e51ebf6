/**
 * Versioned URIs `name:version`, the ids of components and policies (e.g.
 * `model.object-detector:2.0.0-stable`, `policy.loadBalancer.roundrobin:v0.0.1`). They travel as one
 * URL path segment, where `:` may be sent as is or percent-encoded.
 */
import { z } from "zod";

/** Ids travel in URL paths: bounded so a key never outgrows an index entry. */
export const MAX_ID_LENGTH = 256;

export const VERSIONED_URI_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*:[A-Za-z0-9][A-Za-z0-9._+-]*$/;

export const versionedUri = (example: string) =>
  z
    .string()
    .max(MAX_ID_LENGTH, `must be at most ${MAX_ID_LENGTH} characters`)
    .regex(
      VERSIONED_URI_PATTERN,
      `must be name:version (letters, digits, '.', '_', '-'; the version may also hold '+'), e.g. ${example}`,
    );
