/** The event queue drivers a suite runs on: in-process always, Redis Streams when REDIS_URL is set. */

import { type EventQueue, openQueue } from "../../src/queue/index.ts";
import { MemoryQueue } from "../../src/queue/memory.ts";

export const REDIS_URL = process.env.REDIS_URL || undefined;

export const QUEUE_DRIVERS: { name: string; skip: boolean; open: () => EventQueue }[] = [
  { name: "in-process", skip: false, open: () => new MemoryQueue() },
  { name: "redis", skip: REDIS_URL === undefined, open: () => openQueue({ redisUrl: REDIS_URL }) },
];
