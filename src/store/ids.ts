/** Document ids for append-only logs (the audit log, the healing log). */
import { randomBytes } from "node:crypto";

/** An id that sorts by time (then randomly within a millisecond), so the newest come first by id alone. */
export const timeOrderedId = (at: number = Date.now()): string =>
  `${at.toString(36).padStart(9, "0")}${randomBytes(5).toString("hex")}`;
