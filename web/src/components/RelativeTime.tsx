/** A time shown relative to now, with the exact time on hover and for machines. Every
 * mounted instance shares one ticking clock, so "3 min ago" stays true without reloads. */
import { useState, useSyncExternalStore } from "react";
import { formatAbsolute, formatDuration, formatRelative, parseTime } from "./time";

const TICK_MS = 30_000;
const clockListeners = new Set<() => void>();
let clockNow = Date.now();
let clockTimer: ReturnType<typeof setInterval> | undefined;

function subscribeClock(listener: () => void): () => void {
  clockListeners.add(listener);
  if (clockTimer === undefined) {
    clockTimer = setInterval(() => {
      clockNow = Date.now();
      for (const each of clockListeners) each();
    }, TICK_MS);
  }
  return () => {
    clockListeners.delete(listener);
    if (clockListeners.size === 0) {
      clearInterval(clockTimer);
      clockTimer = undefined;
    }
  };
}

/** Now, to the clock's tick; a fresh mount starts from the current time, not the last tick. */
export function useNow(): number {
  const [mountedAt] = useState(Date.now);
  const now = useSyncExternalStore(subscribeClock, () => clockNow);
  return Math.max(now, mountedAt);
}

export function RelativeTime({ value, prefix = "" }: { value: string | null | undefined; prefix?: string }) {
  const now = useNow();
  const date = parseTime(value);
  if (!date) return <span className="muted">unknown</span>;
  return (
    <time dateTime={date.toISOString()} title={formatAbsolute(date)}>
      {prefix}
      {formatRelative(date, now)}
    </time>
  );
}

/** How long since `since` ("waiting 12 min"), with the start time on hover. */
export function Elapsed({ since, prefix = "" }: { since: string | null | undefined; prefix?: string }) {
  const now = useNow();
  const date = parseTime(since);
  if (!date) return null;
  return (
    <time dateTime={date.toISOString()} title={`Since ${formatAbsolute(date)}`}>
      {prefix}
      {formatDuration(now - date.getTime())}
    </time>
  );
}
