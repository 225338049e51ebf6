/** Settings of the bench scripts, from the environment. */

/** A positive integer from `process.env[name]`; the fallback when unset or empty. */
export const intEnv = (name: string, fallback: number): number => {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got '${raw}'`);
  return n;
};
