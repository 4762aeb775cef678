import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { Elapsed, RelativeTime } from "./RelativeTime";
import { formatAbsolute, formatDuration, formatRelative } from "./time";

const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * 60_000).toISOString();

describe("time formatting", () => {
  it("words relative times and durations", () => {
    const now = Date.now();
    expect(formatRelative(new Date(now - 10_000), now)).toBe("just now");
    expect(formatRelative(new Date(now - 5 * 60_000), now)).toBe("5 min ago");
    expect(formatRelative(new Date(now + 5 * 60_000), now)).toBe("in 5 min");
    expect(formatRelative(new Date(now - 125 * 60_000), now)).toBe("2 h ago");
    expect(formatDuration(125 * 60_000)).toBe("2 h 5 min");
    expect(formatDuration(30_000)).toBe("under a minute");
  });
});

describe("RelativeTime", () => {
  it("shows how long ago, with the absolute time as its title", () => {
    const at = minutesAgo(5);
    render(<RelativeTime value={at} prefix="merged " />);
    const time = screen.getByText("merged 5 min ago");
    expect(time.tagName).toBe("TIME");
    expect(time).toHaveAttribute("dateTime", new Date(at).toISOString());
    expect(time).toHaveAttribute("title", formatAbsolute(new Date(at)));
  });

  it("says unknown for a missing time", () => {
    render(<RelativeTime value={null} />);
    expect(screen.getByText("unknown")).toBeInTheDocument();
  });
});

describe("Elapsed", () => {
  it("shows how long since, with the start on hover", () => {
    const since = minutesAgo(20);
    render(<Elapsed since={since} prefix="waiting " />);
    expect(screen.getByText("waiting 20 min")).toHaveAttribute(
      "title",
      `Since ${formatAbsolute(new Date(since))}`,
    );
  });
});
