/** Relative times ("3 min ago") and durations ("2 h 5 min"), for people scanning a queue. */

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export function formatDuration(ms: number): string {
  const span = Math.max(0, ms);
  if (span < MINUTE) return "under a minute";
  if (span < HOUR) return `${Math.floor(span / MINUTE)} min`;
  if (span < DAY) {
    const hours = Math.floor(span / HOUR);
    const minutes = Math.floor((span % HOUR) / MINUTE);
    return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
  }
  const days = Math.floor(span / DAY);
  const hours = Math.floor((span % DAY) / HOUR);
  return hours ? `${days} d ${hours} h` : `${days} d`;
}

export function formatRelative(date: Date, now: number): string {
  const delta = now - date.getTime();
  if (Math.abs(delta) < 45_000) return "just now";
  if (delta < 0) return `in ${formatDuration(-delta)}`;
  if (delta < MINUTE) return "1 min ago";
  if (delta < 7 * DAY) return `${formatDuration(delta).split(" ").slice(0, 2).join(" ")} ago`;
  return date.toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric" });
}

export function formatAbsolute(date: Date): string {
  return date.toLocaleString(undefined, {
    dateStyle: "medium",
    timeStyle: "medium",
  });
}

export function parseTime(value: string | null | undefined): Date | null {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

export function isToday(value: string | null | undefined, now: number): boolean {
  const date = parseTime(value);
  if (!date) return false;
  return new Date(now).toDateString() === date.toDateString();
}
